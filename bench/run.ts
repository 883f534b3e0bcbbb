/**
 * `npm run bench`: progress on stderr, the summary table on stdout and in docs/benchmarks.md.
 * BENCH_ONLY=ingest,onboarding,close,history (comma-separated) runs some parts only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { benchClose, CloseResult } from './close';
import { benchHistory, HistoryResult } from './history';
import { envInt, progress, startInfra } from './infra';
import { benchIngest, IngestResult } from './ingest';
import { benchOnboarding, OnboardingResult } from './onboarding';
import { BenchResults, document, table } from './report';

const PARTS = ['ingest', 'onboarding', 'close', 'history'] as const;

async function main(): Promise<void> {
  // A client call still retrying when its test server was torn down (a failed part) throws from a
  // gRPC timer; that must not take the other parts' results with it.
  process.on('uncaughtException', (err) => {
    if (/Channel has been shut down/.test(err?.message ?? '')) {
      progress(`ignored after teardown: ${err.message}`);
      return;
    }
    console.error(err);
    process.exit(1);
  });
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const only = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (unknown.length) throw new Error(`BENCH_ONLY: unknown part(s) ${unknown.join(', ')}; use ${PARTS.join(', ')}`);
  const wants = (part: (typeof PARTS)[number]) => only.length === 0 || only.includes(part);
  const started = Date.now();
  const load: number[] = [];
  const loadSampler = setInterval(() => load.push(os.loadavg()[0]!), 5_000);
  const infra = await startInfra();
  const results: BenchResults = {};
  const errors: Array<{ part: string; message: string }> = [];
  // One part failing is reported, and the others still run.
  const attempt = async <T>(part: string, run: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await run();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      progress(`${part}: FAILED: ${message}`);
      console.error(err);
      errors.push({ part, message });
      return undefined;
    }
  };
  try {
    if (wants('ingest')) {
      results.ingest = await attempt('ingest', () => benchIngest(infra, {
        events: envInt('BENCH_EVENTS', 200_000),
        batchSize: envInt('BENCH_BATCH', 5_000),
        concurrency: envInt('BENCH_CONCURRENCY', 4),
        rounds: envInt('BENCH_ROUNDS', 4),
      }));
    }
    if (wants('onboarding')) {
      results.onboarding = await attempt('onboarding', () => benchOnboarding(infra, {
        customers: envInt('BENCH_ONBOARD_CUSTOMERS', 400),
        concurrency: envInt('BENCH_ONBOARD_CONCURRENCY', 20),
        rounds: envInt('BENCH_ONBOARD_ROUNDS', 4),
      }));
    }
    if (wants('close')) {
      results.close = await attempt('close', () => benchClose(infra, {
        // 2,000 keeps the default run under 10 minutes on 2 cores; the 10,000 takes about as long alone.
        customers: envInt('BENCH_CLOSE_CUSTOMERS', 2_000),
        eventsPerCustomer: envInt('BENCH_CLOSE_EVENTS', 100),
        startConcurrency: envInt('BENCH_CLOSE_START_CONCURRENCY', 32),
        timeoutMs: envInt('BENCH_CLOSE_TIMEOUT_S', 900) * 1000,
        baseline: process.env.BENCH_CLOSE_BASELINE !== '0',
        cpuProfileDir: process.env.BENCH_CLOSE_PROFILE || undefined,
      }));
    }
    if (wants('history')) {
      results.history = await attempt('history', () =>
        benchHistory(infra, {
          periods: envInt('BENCH_PERIODS', 120),
          replayRepeats: envInt('BENCH_REPLAYS', 11),
          stepTimeoutMs: envInt('BENCH_HISTORY_STEP_TIMEOUT_S', 60) * 1000,
        }),
      );
    }
  } finally {
    clearInterval(loadSampler);
    progress('stopping services and removing the temporary data dir…');
    await infra.stop();
  }
  // BENCH_MERGE_JSON=<results of an earlier run>: the parts not run now are taken from that run
  // (the document says which), e.g. to re-run one part of a long full run.
  const merged: string[] = [];
  if (process.env.BENCH_MERGE_JSON) {
    const earlier = JSON.parse(fs.readFileSync(process.env.BENCH_MERGE_JSON, 'utf8')) as BenchResults & { generatedAt?: string };
    for (const part of PARTS) {
      if (!wants(part) && earlier[part] !== undefined && results[part] === undefined) {
        (results as Record<string, unknown>)[part] = earlier[part];
        merged.push(part);
      }
    }
    for (const e of earlier.errors ?? []) if (merged.includes(e.part)) errors.push(e);
    const when = earlier.generatedAt ?? fs.statSync(process.env.BENCH_MERGE_JSON).mtime.toISOString();
    // A part the earlier run had merged itself keeps the time of the run that measured it.
    const origin = (part: string) => earlier.mergedFrom?.find((m) => m.parts.includes(part))?.generatedAt ?? when;
    const byRun = new Map<string, string[]>();
    for (const part of merged) byRun.set(origin(part), [...(byRun.get(origin(part)) ?? []), part]);
    if (merged.length) results.mergedFrom = [...byRun].map(([generatedAt, parts]) => ({ parts, generatedAt }));
  }
  results.errors = errors;
  results.generatedAt = new Date().toISOString();
  if (process.env.BENCH_RESULTS_JSON) fs.writeFileSync(process.env.BENCH_RESULTS_JSON, JSON.stringify(results, null, 2));
  const body = table(results);
  process.stdout.write(`${body}\n`);
  const out = path.resolve(__dirname, '..', '..', 'docs', 'benchmarks.md');
  fs.writeFileSync(out, document(body, Date.now() - started, load));
  progress(`wrote ${path.relative(process.cwd(), out)}`);
  if (errors.length) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
