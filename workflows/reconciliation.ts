/**
 * The reconciliation workflow: one run per brand, gateway and settlement day, started daily at
 * 02:00 UTC by the brand's Temporal Schedule (`reconciliation-<brand>-<gateway>`) or by hand to
 * re-run a day. It matches the gateway's report against our records, records the payout net of
 * fees, closes timing differences a later report explains, and tells operators about every
 * mismatch. A failed run is marked failed in the database before the workflow fails: nothing is
 * silently dropped.
 */
import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { createReconciliationActivities, ReconcileDayResult } from '../activities/reconciliation';
import { previousUtcDay } from '../domain/reconciliation';

type Activities = ReturnType<typeof createReconciliationActivities>;

export interface ReconciliationWorkflowInput {
  brandId: string;
  /** The gateway's adapter name ("sandbox", "stripe"); the worker must talk to that gateway. */
  gateway: string;
  /** The UTC day to reconcile, YYYY-MM-DD; by default the day before the workflow started. */
  reportDate?: string;
  /** How many days the gateway and we may date a movement apart (default 2). */
  toleranceDays?: number;
}

export interface ReconciliationWorkflowResult extends ReconcileDayResult {
  reportDate: string;
  timingDifferencesResolved: number;
  overdueTimingDifferences: number;
  operatorsNotified: boolean;
}

export const DEFAULT_TOLERANCE_DAYS = 2;

const NON_RETRYABLE = ['INVALID_REPORT_DATE', 'WRONG_GATEWAY', 'RUN_NOT_FOUND', 'GATEWAY_REQUEST_REJECTED'];

const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** A gateway outage is retried for a while; then the run is marked failed and tomorrow's schedule tries again. */
const reconciling = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function reconciliationWorkflow(input: ReconciliationWorkflowInput): Promise<ReconciliationWorkflowResult> {
  // Date.now() is the workflow's deterministic clock: a scheduled run at 02:00 reconciles the day before.
  const reportDate = input.reportDate ?? previousUtcDay(new Date(Date.now()));
  const toleranceDays = input.toleranceDays ?? DEFAULT_TOLERANCE_DAYS;
  if (!Number.isInteger(toleranceDays) || toleranceDays < 0 || toleranceDays > 31) {
    throw ApplicationFailure.nonRetryable(`toleranceDays must be a whole number of days from 0 to 31, got ${toleranceDays}`, 'INVALID_INPUT');
  }
  const { runId } = await bookkeeping.startReconciliationRun({ brandId: input.brandId, gateway: input.gateway, reportDate });

  let day: ReconcileDayResult;
  try {
    day = await reconciling.reconcileSettlementDay({ runId, toleranceDays });
  } catch (err) {
    const cause = (err as { cause?: Error }).cause ?? (err as Error);
    await bookkeeping.failReconciliationRun({ runId, error: cause.message });
    throw err;
  }

  const timing = await bookkeeping.resolveTimingDifferences({ runId, toleranceDays });
  let operatorsNotified = false;
  if (day.mismatches > 0 || timing.overdue > 0) {
    await bookkeeping.notifyReconciliationMismatches({ runId, counts: day.counts, mismatches: day.mismatches, overdueTimingDifferences: timing.overdue });
    operatorsNotified = true;
  }
  return { ...day, reportDate, timingDifferencesResolved: timing.resolvedByThisRun, overdueTimingDifferences: timing.overdue, operatorsNotified };
}
