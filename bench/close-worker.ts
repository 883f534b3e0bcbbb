/**
 * The worker of the period-close benchmark, in its own process so its memory can be measured:
 * the real worker (workers/worker.ts createWorker, real activities) or, for the baseline, a
 * worker of the bare workflows with a no-op activity. Configured by BENCH_WORKER (JSON); tells
 * the parent "ready" over IPC, and on "stop" shuts down and reports its peak RSS.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createSandboxGateway } from '../gateway/sandbox-client';
import { createDb } from '../infra/db';
import { createMailer } from '../infra/mailer';
import { BURST_TUNING, createWorker, DEFAULT_MAX_CACHED_WORKFLOWS } from '../workers/worker';

export interface CloseWorkerConfig {
  kind: 'real' | 'bare';
  address: string;
  taskQueue: string;
  bundlePath: string;
  databaseUrl: string;
  smtp: { host: string; port: number };
  gatewayUrl: string;
  webhookSecret: string;
}

export interface CloseWorkerReport {
  type: 'stopped';
  /** Highest RSS sampled every 100 ms, bytes. */
  peakRssBytes: number;
  /** The kernel's peak resident set size for the process (getrusage), bytes. */
  maxRssBytes: number;
  heapUsedBytes: number;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.BENCH_WORKER ?? '') as CloseWorkerConfig;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 100);
  const connection = await NativeConnection.connect({ address: config.address });
  const db = createDb(config.databaseUrl);
  const mailer = createMailer({ host: config.smtp.host, port: config.smtp.port, from: 'billing@closeloop.bench' });
  const worker =
    config.kind === 'real'
      ? await createWorker({
          connection,
          namespace: 'default',
          taskQueue: config.taskQueue,
          workflowBundle: { codePath: config.bundlePath },
          db,
          mailer,
          gateway: createSandboxGateway({ baseUrl: config.gatewayUrl, webhookSecret: config.webhookSecret, timeoutMs: 10_000 }),
          publicUrl: 'http://127.0.0.1:3000',
          linkSecret: 'bench-link-signing-secret-0123456789abcdef',
        })
      : await Worker.create({
          connection,
          namespace: 'default',
          taskQueue: config.taskQueue,
          workflowBundle: { codePath: config.bundlePath },
          activities: { noop: async () => undefined },
          maxCachedWorkflows: DEFAULT_MAX_CACHED_WORKFLOWS,
          ...BURST_TUNING, // the same worker settings as the real one
        });
  const run = worker.run();
  process.on('message', (msg) => {
    if (msg === 'stop') worker.shutdown();
  });
  process.send!({ type: 'ready' });
  await run;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  const report: CloseWorkerReport = {
    type: 'stopped',
    peakRssBytes: peak,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    heapUsedBytes: process.memoryUsage().heapUsed,
  };
  await connection.close();
  mailer.close();
  await db.destroy();
  await new Promise<void>((resolve) => process.send!(report, () => resolve()));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
