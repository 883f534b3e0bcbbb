/** Builds the Closeloop worker: every workflow type and the real activities. */
import { NativeConnection, Worker, WorkerOptions } from '@temporalio/worker';
import { createActivities, ActivityDeps } from '../activities';

export interface CloseloopWorkerOptions extends ActivityDeps {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  /** A prebuilt bundle (tests build one per suite); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Workflows kept in the sticky cache; default DEFAULT_MAX_CACHED_WORKFLOWS. */
  maxCachedWorkflows?: number;
}

/**
 * The SDK's default cache grows with the heap limit (about 2,300 workflows on a 4 GiB heap), at
 * roughly half a MiB per cached customer workflow: a period close of thousands of customers then
 * takes the worker past 1 GiB. Every customer wakes once a period, so a cached run is rarely
 * reused before it would be evicted anyway; a miss replays a history of a few dozen events.
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 500;

/**
 * Tuning for bursts: every customer whose period ends at the same moment wakes at once, thousands
 * of workflow tasks together (bench/close.ts measures it; docs/benchmarks.md has the numbers).
 * - 100 workflow tasks at a time (SDK default 40): the communication workflow's tasks wait on
 *   their local activities (workflows/steps.ts), so more of them in flight keep the database busy.
 * - A task waits on the worker's sticky queue up to 30 s (SDK default 10 s): in a burst a task's
 *   turn can take longer than 10 s, and at 10 s the server timed it out and put it on the normal
 *   queue, where it was replayed from its whole history: work thrown away exactly under load.
 * - One poll of the normal queue per sticky poll (SDK default 0.2): new runs and message workflows
 *   start on the normal queue, and at 0.2 they starved behind the sticky backlog — a 2,000-customer
 *   close stalled for a minute at a time (125–148 s at 0.2, 79–101 s at 1).
 */
export const BURST_TUNING = {
  maxConcurrentWorkflowTaskExecutions: 100,
  stickyQueueScheduleToStartTimeout: '30 seconds',
  nonStickyToStickyPollRatio: 1,
} satisfies Partial<WorkerOptions>;

export const WORKFLOWS_PATH = require.resolve('../workflows');

export async function createWorker(opts: CloseloopWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    maxCachedWorkflows: opts.maxCachedWorkflows ?? DEFAULT_MAX_CACHED_WORKFLOWS,
    ...BURST_TUNING,
    activities: createActivities({ db: opts.db, mailer: opts.mailer, publicUrl: opts.publicUrl, gateway: opts.gateway, linkSecret: opts.linkSecret }),
  });
}
