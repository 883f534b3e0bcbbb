/**
 * Reconciliation's side effects: open the day's run, fetch the gateway's settlement report and
 * match it against our records (the domain's `reconcile`), record the payout net of fees, close
 * timing differences a later report explains, and tell operators about mismatches.
 *
 * Fetching, matching and writing happen in one activity on purpose: a report can hold many
 * thousands of lines, which should not travel through workflow history (payload limits), and a
 * retry simply recomputes and rewrites the same run in one database transaction.
 */
import { ApplicationFailure } from '@temporalio/activity';
import {
  completeRun,
  failRun,
  loadOurRecords,
  operatorEmail,
  paymentOwners,
  reportedOnOtherDays,
  resolveTimingDifferences,
  runKey,
  startRun,
  type PayoutRecord,
} from '../data/reconciliation';
import { countItems, linePaymentId, linesForBrand, mismatchCount, payoutTotals, reconcile, type OurRecordType, type ReconciliationCounts } from '../domain/reconciliation';
import { GatewayError, utcDayRange, type PaymentGateway } from '../gateway/adapter';
import type { Db } from '../infra/db';

export const ReconciliationErrorTypes = {
  INVALID_REPORT_DATE: 'INVALID_REPORT_DATE',
  WRONG_GATEWAY: 'WRONG_GATEWAY',
  RUN_NOT_FOUND: 'RUN_NOT_FOUND',
} as const;

export interface ReconcileDayResult {
  runId: string;
  counts: ReconciliationCounts;
  mismatches: number;
  payouts: PayoutRecord[];
}

/** Gateway errors keep their stable type, so the workflow's retry policy can tell an outage from a refusal. */
async function asFailure<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err;
    throw ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: !err.retryable, details: [{ code: err.code, httpStatus: err.httpStatus ?? null }] });
  }
}

export function createReconciliationActivities({ db, gateway }: { db: Db; gateway: PaymentGateway }) {
  /** The gateway's own date for payments it knows; null for those it does not. */
  async function gatewayDates(paymentIds: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>();
    for (const id of paymentIds) out.set(id, (await gateway.getPayment(id))?.createdAt ?? null);
    return out;
  }

  /** Fetches the report, claims the brand's lines, matches them and writes the run, its items and payouts. */
  async function reconcileDay({ runId, toleranceDays }: { runId: string; toleranceDays: number }): Promise<ReconcileDayResult> {
    const key = await runKey(db, runId);
    if (!key) throw ApplicationFailure.nonRetryable(`reconciliation run ${runId} not found`, ReconciliationErrorTypes.RUN_NOT_FOUND);
    const report = await gateway.settlementReport({ date: key.reportDate });

    // Settlement lines carry no metadata: a line belongs to the brand whose payment it moves,
    // by our payments table, else by the brand the gateway has in the payment's metadata.
    const paymentIds = [...new Set(report.lines.map(linePaymentId).filter((id): id is string => id !== null))];
    const owners = new Map<string, string | null>(await paymentOwners(db, key.gateway, paymentIds));
    for (const id of paymentIds) {
      if (owners.has(id)) continue;
      const payment = await gateway.getPayment(id);
      owners.set(id, payment?.metadata.brandId ?? null);
    }
    const { own, unclaimed } = linesForBrand(report.lines, owners, key.brandId);
    const lines = [...own, ...unclaimed];

    const reported: Record<OurRecordType, string[]> = { payment: [], refund: [], chargeback: [] };
    for (const line of lines) if (line.type === 'payment' || line.type === 'refund' || line.type === 'chargeback') reported[line.type].push(line.id);
    const records = await loadOurRecords(db, key, reported);

    // Only records the report leaves out need the gateway's date: another run found them on
    // its report, or the gateway knows the payment and dates it on another day.
    const onReport = new Set(lines.map((l) => `${l.type}:${l.id}`));
    const absent = records.filter((r) => r.gatewayId === null || !onReport.has(`${r.type}:${r.gatewayId}`));
    const elsewhere = await reportedOnOtherDays(db, key, runId, absent);
    const askGateway = absent.filter((r) => r.type === 'payment' && r.gatewayId !== null && !elsewhere.has(`payment:${r.id}`)).map((r) => r.gatewayId!);
    const dates = await gatewayDates(askGateway);
    for (const record of absent) {
      record.gatewayOccurredAt = elsewhere.get(`${record.type}:${record.id}`) ?? (record.type === 'payment' && record.gatewayId ? (dates.get(record.gatewayId) ?? null) : null);
    }

    const items = reconcile(lines, records, { reportDate: key.reportDate, toleranceDays });
    const counts = countItems(items, lines.length, records.length);
    const { payouts } = await completeRun(db, runId, { items, counts, payouts: payoutTotals(own), unclaimedLines: unclaimed });
    return { runId, counts, mismatches: mismatchCount(counts), payouts };
  }

  return {
    async startReconciliationRun(input: { brandId: string; gateway: string; reportDate: string }): Promise<{ runId: string }> {
      if (!utcDayRange(input.reportDate)) {
        throw ApplicationFailure.nonRetryable(`report date must be a real day as YYYY-MM-DD, got "${input.reportDate}"`, ReconciliationErrorTypes.INVALID_REPORT_DATE);
      }
      if (input.gateway !== gateway.name) {
        throw ApplicationFailure.nonRetryable(`this worker talks to the "${gateway.name}" gateway, not "${input.gateway}"`, ReconciliationErrorTypes.WRONG_GATEWAY);
      }
      return startRun(db, input);
    },

    async reconcileSettlementDay(input: { runId: string; toleranceDays: number }): Promise<ReconcileDayResult> {
      return asFailure(() => reconcileDay(input));
    },

    async failReconciliationRun({ runId, error }: { runId: string; error: string }): Promise<void> {
      await failRun(db, runId, error);
    },

    async resolveTimingDifferences({ runId, toleranceDays }: { runId: string; toleranceDays: number }) {
      return resolveTimingDifferences(db, runId, toleranceDays);
    },

    /**
     * Queues one operator message per run (dedupe key `reconciliation-mismatches:<run>`): a
     * re-run of the day refreshes the queued message's figures rather than sending another.
     */
    async notifyReconciliationMismatches(input: { runId: string; counts: ReconciliationCounts; mismatches: number; overdueTimingDifferences: number }): Promise<{ queued: boolean }> {
      const key = await runKey(db, input.runId);
      if (!key) throw ApplicationFailure.nonRetryable(`reconciliation run ${input.runId} not found`, ReconciliationErrorTypes.RUN_NOT_FOUND);
      const dedupeKey = `reconciliation-mismatches:${input.runId}`;
      const data = JSON.stringify({
        runId: input.runId,
        gateway: key.gateway,
        reportDate: key.reportDate,
        mismatches: input.mismatches,
        overdueTimingDifferences: input.overdueTimingDifferences,
        counts: input.counts,
        link: `/v1/reconciliation/runs/${input.runId}`,
      });
      const inserted = await db('outbound_messages')
        .insert({
          brand_id: key.brandId,
          // Not about one customer: an operator message has no customer (ids are never empty).
          customer_id: '',
          dedupe_key: dedupeKey,
          category: 'operator',
          template: 'reconciliation-mismatches',
          recipient: await operatorEmail(db, key.brandId),
          data,
        })
        .onConflict(['brand_id', 'dedupe_key'])
        .ignore()
        .returning('id');
      if (!inserted.length) await db('outbound_messages').where({ brand_id: key.brandId, dedupe_key: dedupeKey, status: 'queued' }).update({ data });
      return { queued: inserted.length > 0 };
    },
  };
}
