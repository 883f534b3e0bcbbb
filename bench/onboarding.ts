/**
 * Onboarding throughput: lead → active with the first invoice, driven through the real HTTP API
 * (POST /v1/leads, then POST /v1/customers/:id/activate) on the Temporal dev server with the real
 * worker (workers/worker.ts). Baseline: a bare workflow running the same number of no-op
 * activities (counted from an onboarded customer's history), started and awaited through the
 * client, on the same server with the same concurrency. The two alternate in rounds.
 */
import crypto from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import { createApiKey } from '../api/auth';
import { listen } from '../api/server';
import { customerWorkflowId } from '../domain/ids';
import { createSandboxGateway } from '../gateway/sandbox-client';
import { ensureBrand } from '../infra/brands';
import { createLogger } from '../infra/logger';
import { createMailer } from '../infra/mailer';
import { locateBinary, sdkExecutable, TEMPORAL_CLI } from '../infra/temporal-binaries';
import { BURST_TUNING, createWorker, DEFAULT_MAX_CACHED_WORKFLOWS } from '../workers/worker';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/shared';
import { BenchInfra, progress, stepsOf, WEBHOOK_SECRET } from './infra';

export interface OnboardingOptions {
  customers: number;
  concurrency: number;
  rounds: number;
}

export interface OnboardingResult {
  options: OnboardingOptions;
  activitiesPerOnboarding: number;
  /** The activities and child workflows of one onboarding, from its history. */
  steps: string[];
  historyEventsAtActivation: number;
  /** Customers per second through the API (lead → active, first invoice charged). */
  perSecond: number;
  baselinePerSecond: number;
  /** Median latency of one onboarding (both requests) and one baseline workflow, ms. */
  medianMs: number;
  baselineMedianMs: number;
}

const quietLogger = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: console.error, log: () => undefined };

async function drive(total: number, concurrency: number, one: (i: number) => Promise<void>): Promise<{ ms: number; latencies: number[] }> {
  let next = 0;
  const latencies: number[] = [];
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) {
        const i = next++;
        const t = process.hrtime.bigint();
        await one(i);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, latencies };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function benchOnboarding(infra: BenchInfra, opts: OnboardingOptions): Promise<OnboardingResult> {
  const { db, bundle } = infra;
  progress('onboarding: starting the Temporal dev server, the real worker, the bare-workflow worker and the API…');
  const bareBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./bare-workflow'), logger: quietLogger });
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: sdkExecutable(locateBinary(TEMPORAL_CLI)), searchAttributes: SEARCH_ATTRIBUTE_KEYS },
  });
  const taskQueue = `bench-onboard-${crypto.randomUUID()}`;
  const bareQueue = `bench-bare-${crypto.randomUUID()}`;
  const gateway = createSandboxGateway({ baseUrl: infra.sandbox.url, webhookSecret: WEBHOOK_SECRET, timeoutMs: 5_000 });
  const mailer = createMailer({ host: infra.mail.host, port: infra.mail.port, from: 'billing@closeloop.bench' });
  const worker = await createWorker({
    connection: env.nativeConnection,
    namespace: 'default',
    taskQueue,
    workflowBundle: bundle,
    db,
    mailer,
    gateway,
    publicUrl: 'http://127.0.0.1:3000',
    linkSecret: 'bench-link-signing-secret-0123456789abcdef',
  });
  const bareWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: bareQueue,
    workflowBundle: bareBundle,
    activities: { noop: async () => undefined },
    maxCachedWorkflows: DEFAULT_MAX_CACHED_WORKFLOWS,
    ...BURST_TUNING, // the same worker settings as the real one
  });
  const runs = [worker.run(), bareWorker.run()];
  const app = createApp({ temporal: env.client, db, logger: createLogger('silent'), config: { taskQueue }, defaultMetrics: false, gateway });
  const server = await listen(app, 0, '127.0.0.1');
  try {
    const brandId = 'bench-onboard';
    await ensureBrand(db, { id: brandId, name: 'Bench onboarding', currency: 'USD', mode: 'sandbox' });
    const key = await createApiKey(db, brandId, 'bench');
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
      usage_components: JSON.stringify([{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 1000 }]),
    });
    const call = async (method: string, path: string, body: unknown) => {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
      return JSON.parse(text) as any;
    };
    let seq = 0;
    const onboard = async (): Promise<string> => {
      const n = seq++;
      const lead = await call('POST', '/v1/leads', { email: `lead${n}@example.com`, source: 'bench', campaign: 'onboarding', externalId: `bench-${n}` });
      const activated = await call('POST', `/v1/customers/${encodeURIComponent(lead.id)}/activate`, { plan: 'pro', paymentMethod: 'tok_visa' });
      if (activated.stage !== 'active') throw new Error(`customer ${lead.id} is ${activated.stage} after activation`);
      return lead.id as string;
    };

    // Warm-up (JIT, pools, bundles) and the activity count from a real onboarding's history.
    const sampleId = await onboard();
    const history = await env.client.workflow.getHandle(customerWorkflowId(brandId, sampleId)).fetchHistory();
    const events = history.events ?? [];
    // Activities and child workflows (messages go through a communication child workflow): each counts as one step.
    const steps = stepsOf(events);
    const activities = steps.length;
    progress(`onboarding: one onboarding runs ${steps.join(', ')} (${events.length} history events so far); warm-up…`);
    for (let i = 0; i < Math.min(opts.concurrency, 10); i += 1) await onboard();
    const bare = () => env.client.workflow.execute('bareWorkflow', { workflowId: `bare-${crypto.randomUUID()}`, taskQueue: bareQueue, args: [activities] });
    for (let i = 0; i < Math.min(opts.concurrency, 10); i += 1) await bare();

    const perRound = Math.ceil(opts.customers / opts.rounds);
    let apiMs = 0;
    let bareMs = 0;
    let apiCount = 0;
    let bareCount = 0;
    const apiLat: number[] = [];
    const bareLat: number[] = [];
    for (let r = 0; r < opts.rounds; r += 1) {
      const n = Math.min(perRound, opts.customers - r * perRound);
      if (n <= 0) break;
      // Alternate which side goes first.
      const sides = r % 2 === 0 ? (['bare', 'api'] as const) : (['api', 'bare'] as const);
      const line: string[] = [];
      for (const side of sides) {
        const res = await drive(n, opts.concurrency, async () => {
          if (side === 'api') await onboard();
          else await bare();
        });
        if (side === 'api') {
          apiMs += res.ms;
          apiCount += n;
          apiLat.push(...res.latencies);
        } else {
          bareMs += res.ms;
          bareCount += n;
          bareLat.push(...res.latencies);
        }
        line.push(`${side === 'api' ? 'onboarding' : 'bare workflow'} ${((n * 1000) / res.ms).toFixed(1)}/s`);
      }
      progress(`onboarding round ${r + 1}/${opts.rounds} (${n} each): ${line.join(', ')}`);
    }
    const active = await db('customers').where({ brand_id: brandId, stage: 'active' }).count({ n: '*' });
    const paid = await db('invoices').where({ brand_id: brandId, kind: 'opening', status: 'paid' }).count({ n: '*' });
    const expected = apiCount + 1 + Math.min(opts.concurrency, 10);
    if (Number(active[0]!.n) !== expected || Number(paid[0]!.n) !== expected) {
      throw new Error(`onboarding: ${active[0]!.n} active customers and ${paid[0]!.n} paid opening invoices, expected ${expected}`);
    }
    return {
      options: opts,
      activitiesPerOnboarding: activities,
      steps,
      historyEventsAtActivation: events.length,
      perSecond: (apiCount * 1000) / apiMs,
      baselinePerSecond: (bareCount * 1000) / bareMs,
      medianMs: median(apiLat),
      baselineMedianMs: median(bareLat),
    };
  } finally {
    await server.close();
    for (const w of [worker, bareWorker]) if (w.getState() === 'RUNNING') w.shutdown();
    await Promise.all(runs.map((p) => p.catch(() => undefined)));
    mailer.close();
    await env.teardown();
  }
}
