/**
 * The baseline workflows: the same number of activities as the real path, each a no-op, run one
 * after the other. Bundled on their own (see onboarding.ts / close.ts).
 */
import { proxyActivities, sleep } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '30 seconds' });

/** `activities` no-op activities in sequence, then done. */
export async function bareWorkflow(activities: number): Promise<void> {
  for (let i = 0; i < activities; i += 1) await noop();
}

/** Waits until `wakeAtMs` (a durable timer, like a period end), then runs `activities` no-op activities. */
export async function bareTimerWorkflow(wakeAtMs: number, activities: number): Promise<void> {
  const wait = wakeAtMs - Date.now();
  if (wait > 0) await sleep(wait);
  for (let i = 0; i < activities; i += 1) await noop();
}
