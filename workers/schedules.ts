/**
 * The Temporal Schedules the worker keeps in place: one daily reconciliation per brand and
 * gateway (`reconciliation-<brand>-<gateway>`, 02:00 UTC, overlapping runs skipped). Created
 * idempotently at start: an existing schedule is brought up to date instead, so a restart or a
 * second worker never makes a duplicate. A brand created later gets its schedule at the next start.
 */
import { Client, ScheduleAlreadyRunning, ScheduleOverlapPolicy, type ScheduleOptionsStartWorkflowAction, type ScheduleSpec } from '@temporalio/client';
import type { Db } from '../infra/db';
import type { reconciliationWorkflow } from '../workflows/reconciliation';

export function reconciliationScheduleId(brandId: string, gateway: string): string {
  return `reconciliation-${brandId}-${gateway}`;
}

/** Every day at 02:00 UTC, when the previous day's settlement report is complete. */
export const RECONCILIATION_SPEC: ScheduleSpec = { calendars: [{ hour: 2, minute: 0 }], timezone: 'UTC' };

export interface ReconciliationScheduleOptions {
  taskQueue: string;
  brands: readonly string[];
  /** The gateway adapter's name (`gateway.name`): "sandbox", "stripe". */
  gateway?: string;
}

export async function ensureReconciliationSchedules(client: Client, opts: ReconciliationScheduleOptions): Promise<{ created: string[]; updated: string[] }> {
  const gateway = opts.gateway ?? 'sandbox';
  const created: string[] = [];
  const updated: string[] = [];
  for (const brandId of opts.brands) {
    const scheduleId = reconciliationScheduleId(brandId, gateway);
    const action: ScheduleOptionsStartWorkflowAction<typeof reconciliationWorkflow> = {
      type: 'startWorkflow',
      workflowType: 'reconciliationWorkflow',
      workflowId: scheduleId,
      taskQueue: opts.taskQueue,
      // No report date: each run reconciles the day before it started.
      args: [{ brandId, gateway }],
      workflowExecutionTimeout: '1 day',
    };
    // A missed 02:00 (server down) still runs within the day; a run still going when the next is due is not doubled.
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day', pauseOnFailure: false };
    try {
      await client.schedule.create({ scheduleId, spec: RECONCILIATION_SPEC, action, policies });
      created.push(scheduleId);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await client.schedule.getHandle(scheduleId).update<typeof reconciliationWorkflow>((previous) => ({ ...previous, spec: RECONCILIATION_SPEC, action, policies }));
      updated.push(scheduleId);
    }
  }
  return { created, updated };
}

/** Every brand in the database: each gets its daily reconciliation. */
export async function allBrandIds(db: Db): Promise<string[]> {
  return (await db('brands').orderBy('id').select('id')).map((r) => r.id as string);
}
