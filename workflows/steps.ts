/**
 * Activity stubs that are local activities under a patch (the communication workflow's
 * bookkeeping): run in the worker that runs the workflow task, their results recorded as markers,
 * with no activity task round trip through the server and no workflow task per result. A message
 * takes two workflow tasks and one activity task (the delivery) instead of three and two.
 *
 * Only for workflows whose steps run one after another: a customer workflow on local activities
 * (tried for the period-close benchmark) failed the chaos fault suite — after a worker kill during
 * an activation, the replay handed one local activity's result to another (an acquisition policy
 * came back undefined) while update handlers ran local activities of their own. Its steps stay
 * activity tasks.
 *
 * Histories recorded before the patch scheduled activity tasks; they replay through the remote
 * stubs (docs/workflow-changes.md).
 */
import { patched, proxyActivities, proxyLocalActivities, type ActivityOptions, type LocalActivityOptions } from '@temporalio/workflow';

/**
 * The patch of runs started on local activities, asked once, first thing in each run
 * (`runOnLocalActivities`), rather than at every call: every `patched()` call records a marker and
 * an upsert of the `TemporalChangeVersion` search attribute (a visibility write on the server).
 */
export const LOCAL_ACTIVITIES_PATCH = 'local-activities';

/** Per run (module state is per workflow execution in the SDK's sandbox). */
const run = { local: false };

/** Decides this run's stubs: true for runs started on this code, false when replaying a history from before. */
export function runOnLocalActivities(): boolean {
  run.local = patched(LOCAL_ACTIVITIES_PATCH);
  return run.local;
}

/**
 * Stubs that are local activities in runs that took the patch and activity tasks in runs that did
 * not. A wait of more than a second between attempts is a durable timer, not a worker holding the
 * workflow task while it sleeps (so a database outage does not pin the worker's task slots).
 */
export function stepsFor<A extends object>(options: ActivityOptions): A {
  const remote = proxyActivities<A>(options);
  const local = proxyLocalActivities<A>({ ...options, localRetryThreshold: '1 second' } satisfies LocalActivityOptions);
  return new Proxy({} as A, {
    get: (_, name) => (run.local ? local : remote)[name as keyof A],
  });
}
