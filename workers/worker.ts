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

export const WORKFLOWS_PATH = require.resolve('../workflows');

export async function createWorker(opts: CloseloopWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
    maxCachedWorkflows: opts.maxCachedWorkflows ?? DEFAULT_MAX_CACHED_WORKFLOWS,
    activities: createActivities({ db: opts.db, mailer: opts.mailer, publicUrl: opts.publicUrl, gateway: opts.gateway, linkSecret: opts.linkSecret }),
  });
}
