/**
 * History per run: one customer through N monthly periods on the time-skipping server (real
 * bundle, real activities on PostgreSQL). Each period is a fresh run (continue-as-new); reports
 * history events per run and the time to replay the latest run's history against the first's.
 */
import crypto from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { customerWorkflowId } from '../domain/ids';
import { ensureBrand } from '../infra/brands';
import { ensureSearchAttributes } from '../infra/search-attributes';
import { locateBinary, sdkExecutable, TEMPORAL_TEST_SERVER } from '../infra/temporal-binaries';
import { customerWorkflow } from '../workflows/customer';
import { activateUpdate } from '../workflows/shared';
import { BenchInfra, median, progress } from './infra';

const DAY = 24 * 60 * 60 * 1000;

export interface HistoryResult {
  periods: number;
  runs: number;
  /** History events of every run in order; the last one is still open (its period just began). */
  lengths: number[];
  firstReplayMs: number;
  lastReplayMs: number;
  replayRepeats: number;
  /** Per history, replaying it `amortizedBatch` times through one replay worker. */
  firstAmortizedMs: number;
  lastAmortizedMs: number;
  amortizedBatch: number;
  wallMs: number;
}

export async function benchHistory(infra: BenchInfra, opts: { periods: number; replayRepeats: number; stepTimeoutMs?: number }): Promise<HistoryResult> {
  const stepTimeoutMs = opts.stepTimeoutMs ?? 60_000;
  const { db, bundle } = infra;
  progress('history: starting the time-skipping test server…');
  const started = Date.now();
  let torn = false;
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: sdkExecutable(locateBinary(TEMPORAL_TEST_SERVER)) } });
  try {
    await ensureSearchAttributes(env.connection, env.namespace ?? 'default');
    const brandId = 'bench-history';
    await ensureBrand(db, { id: brandId, name: 'Bench history', currency: 'USD', mode: 'sandbox' });
    await db('plans').insert({
      brand_id: brandId,
      code: 'pro',
      version: 1,
      name: 'Pro',
      currency: 'USD',
      recurring_fee_minor: 4900,
      cost_to_serve_minor: 1200,
      billing_period: 'P1M',
      entitlements: JSON.stringify({ features: ['api', 'sso'], quotas: { api_calls: 100_000 } }),
      usage_components: JSON.stringify([]),
    });
    const taskQueue = `bench-${crypto.randomUUID()}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: infra.activities(db) });
    const customerId = 'cus_bench_history';
    const workflowId = customerWorkflowId(brandId, customerId);
    const runIds: string[] = [];
    const lengths: number[] = [];
    await worker.runUntil(async () => {
      const handle = await env.client.workflow.start(customerWorkflow, {
        workflowId,
        taskQueue,
        args: [{ brandId, customerId, email: 'history@example.com' }],
      });
      progress('history: customer workflow started; activating…');
      const secret = crypto.randomBytes(16).toString('hex');
      await handle.executeUpdate(activateUpdate, {
        args: [{ plan: 'pro', paymentMethod: 'tok_visa', credential: { hash: crypto.createHash('sha256').update(secret).digest('hex'), prefix: secret.slice(0, 8) } }],
      });
      progress('history: active; skipping through the periods…');
      for (let month = 0; month < opts.periods; month += 1) {
        // A period that does not pass (time skipping stays locked) stops this part instead of hanging the bench.
        let timer: NodeJS.Timeout | undefined;
        const stuck = new Promise<'stuck'>((resolve) => (timer = setTimeout(resolve, stepTimeoutMs, 'stuck')));
        const sleeping = env.sleep(31 * DAY);
        sleeping.catch(() => undefined); // abandoned when stuck: the server is torn down under it
        const outcome = await Promise.race([sleeping, stuck]);
        clearTimeout(timer);
        if (outcome === 'stuck') {
          const d = await env.client.workflow.getHandle(workflowId).describe();
          throw new Error(
            `history: period ${month + 1} did not pass within ${stepTimeoutMs / 1000} s of real time (the time-skipping server did not skip; ` +
              `customer workflow ${d.status.name}, ${d.historyLength} events, ${d.raw.pendingActivities?.length ?? 0} pending activities, ${d.raw.pendingChildren?.length ?? 0} pending children)`,
          );
        }
        const { runId, historyLength } = await env.client.workflow.getHandle(workflowId).describe();
        if (runIds.at(-1) !== runId) {
          runIds.push(runId);
          lengths.push(historyLength);
        } else {
          lengths[lengths.length - 1] = historyLength;
        }
        if ((month + 1) % 6 === 0 || month + 1 === opts.periods) progress(`history: period ${month + 1}/${opts.periods}, run ${runIds.length}, ${historyLength} events`);
      }
    });
    // Each run's final length: describe() saw the run while it was current; a finished run's history is final now.
    const histories = await Promise.all(runIds.map((runId) => env.client.workflow.getHandle(workflowId, runId).fetchHistory()));
    const finalLengths = histories.map((h) => h.events?.length ?? 0);
    // The current run has only just begun its period; the latest run that lived a whole period
    // is the one before it.
    const first = histories[0]!;
    const last = histories.length > 1 ? histories.at(-2)! : first;
    // Replay needs no server: stop it first so its timers do not compete with the measurement.
    await env.teardown();
    torn = true;
    progress('history: replaying the first and the latest completed run…');
    const replay = async (h: typeof first) => {
      const t = process.hrtime.bigint();
      await Worker.runReplayHistory({ workflowBundle: bundle }, h, workflowId);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    await replay(first); // warm-up
    await replay(last);
    const firstTimes: number[] = [];
    const lastTimes: number[] = [];
    for (let i = 0; i < opts.replayRepeats; i += 1) {
      // Alternate the order so neither side always runs second.
      if (i % 2 === 0) {
        firstTimes.push(await replay(first));
        lastTimes.push(await replay(last));
      } else {
        lastTimes.push(await replay(last));
        firstTimes.push(await replay(first));
      }
    }
    // Amortized: the same history `batch` times through one replay worker, so worker creation
    // drops out and what remains is the replay itself. Alternated like the single replays.
    const batch = 20;
    const replayMany = async (h: typeof first) => {
      const t = process.hrtime.bigint();
      for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, Array.from({ length: batch }, () => ({ workflowId, history: h })))) {
        if (result.error) throw result.error;
      }
      return Number(process.hrtime.bigint() - t) / 1e6 / batch;
    };
    const firstAmortized: number[] = [];
    const lastAmortized: number[] = [];
    for (let i = 0; i < 4; i += 1) {
      const pair = i % 2 === 0 ? [first, last] : [last, first];
      for (const h of pair) (h === first ? firstAmortized : lastAmortized).push(await replayMany(h));
    }
    return {
      firstAmortizedMs: median(firstAmortized),
      lastAmortizedMs: median(lastAmortized),
      amortizedBatch: batch,
      periods: opts.periods,
      runs: runIds.length,
      lengths: finalLengths.length ? finalLengths : lengths,
      firstReplayMs: median(firstTimes),
      lastReplayMs: median(lastTimes),
      replayRepeats: opts.replayRepeats,
      wallMs: Date.now() - started,
    };
  } finally {
    if (!torn) await env.teardown();
  }
}
