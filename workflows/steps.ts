/**
 * Activity stubs that are local activities under a patch (the communication workflow's
 * bookkeeping): run in the worker that runs the workflow task, their results recorded as markers,
 * with no activity task round trip through the server and no workflow task per result. A message
 * takes two workflow tasks and one activity task (the delivery) instead of three and two.
 *
 * Only for workflows whose steps run one after another. A customer workflow on local activities
 * (tried for the period-close benchmark: a 10,000-customer close in 383 s instead of 795 s)
 * failed the chaos fault suite: after a worker kill during an activation, a replayed run got
 * `undefined` for its acquisition policy, as if a local activity's result had been matched to
 * another one (update handlers were running local activities of their own at the time). Not
 * diagnosed further; the customer workflow's steps stay activity tasks.
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
