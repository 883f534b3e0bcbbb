/**
 * Usage ingest through the real HTTP API (Express app, real db, Temporal dev server and worker
 * so a customer can be made active) against a raw multi-row INSERT of the same rows into the
 * same table, in the same batch sizes and with the same concurrency. The two alternate in
 * rounds so both see the table grow alike.
 */
import crypto from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createApp } from '../api/app';
import { createApiKey } from '../api/auth';
import { listen } from '../api/server';
import { createSandboxGateway } from '../gateway/sandbox-client';
import { ensureBrand } from '../infra/brands';
import type { Db } from '../infra/db';
import { createLogger } from '../infra/logger';
import { locateBinary, sdkExecutable, TEMPORAL_CLI } from '../infra/temporal-binaries';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/shared';
import { BenchInfra, progress, WEBHOOK_SECRET } from './infra';

export interface IngestOptions {
  events: number;
  batchSize: number;
  concurrency: number;
  rounds: number;
}

export interface Throughput {
  events: number;
  ms: number;
  perSecond: number;
}

export interface IngestResult {
  options: IngestOptions;
  api: Throughput;
  baseline: Throughput;
  apiDuplicates: Throughput;
  baselineDuplicates: Throughput;
}

interface Event {
  id: string;
  metric: string;
  quantity: number;
  timestamp: string;
}

/** Same statement style as data/usage.ts recordUsage: rows as one jsonb parameter, ON CONFLICT DO NOTHING. */
async function rawInsert(db: Db, brandId: string, customerId: string, events: Event[]): Promise<number> {
  const rows = JSON.stringify(events.map((e) => ({ id: e.id, metric: e.metric, quantity: e.quantity, occurred_at: e.timestamp, properties: {} })));
  const res = await db.raw<{ rowCount: number }>(
    `INSERT INTO usage_events (brand_id, customer_id, event_id, metric, quantity, occurred_at, properties)
     SELECT ?, ?, e.id, e.metric, e.quantity, e.occurred_at, e.properties
       FROM jsonb_to_recordset(?::jsonb) AS e(id text, metric text, quantity numeric, occurred_at timestamptz, properties jsonb)
     ON CONFLICT (brand_id, customer_id, event_id) DO NOTHING`,
    [brandId, customerId, rows],
  );
  return res.rowCount;
}

function makeBatches(prefix: string, total: number, batchSize: number): Event[][] {
  const now = Date.now();
  const batches: Event[][] = [];
  for (let start = 0; start < total; start += batchSize) {
    const n = Math.min(batchSize, total - start);
    batches.push(
      Array.from({ length: n }, (_, i) => ({
        id: `${prefix}-${start + i}`,
        metric: 'api_calls',
        quantity: 1 + ((start + i) % 7),
        timestamp: new Date(now - 60_000 - ((start + i) % 3_600) * 1_000).toISOString(),
      })),
    );
  }
  return batches;
}

/** Runs `send` over the batches with `concurrency` in flight; returns the elapsed ms and the count it reports. */
async function drive(batches: Event[][], concurrency: number, send: (b: Event[]) => Promise<number>): Promise<{ ms: number; stored: number }> {
  let next = 0;
  let stored = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, batches.length) }, async () => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        const n = await send(batch); // not `stored += await …`: that reads `stored` before the await
        stored += n;
      }
    }),
  );
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, stored };
}

const rate = (events: number, ms: number): Throughput => ({ events, ms, perSecond: (events * 1000) / ms });

export async function benchIngest(infra: BenchInfra, opts: IngestOptions): Promise<IngestResult> {
  const { db, bundle } = infra;
  progress('ingest: starting the Temporal dev server, worker and API…');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: sdkExecutable(locateBinary(TEMPORAL_CLI)), searchAttributes: SEARCH_ATTRIBUTE_KEYS },
  });
  const taskQueue = `bench-${crypto.randomUUID()}`;
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: infra.activities(db) });
  const workerRun = worker.run();
  const gateway = createSandboxGateway({ baseUrl: infra.sandbox.url, webhookSecret: WEBHOOK_SECRET, timeoutMs: 5_000 });
  const app = createApp({ temporal: env.client, db, logger: createLogger('silent'), config: { taskQueue }, defaultMetrics: false, gateway });
  const server = await listen(app, 0, '127.0.0.1');
  try {
    const brandId = 'bench-ingest';
    await ensureBrand(db, { id: brandId, name: 'Bench ingest', currency: 'USD', mode: 'sandbox' });
    const key = await createApiKey(db, brandId, 'bench');
    await db('plans').insert({
      brand_id: brandId,
      code: 'metered',
      version: 1,
      name: 'Metered',
      currency: 'USD',
      recurring_fee_minor: 1000,
      cost_to_serve_minor: 100,
      billing_period: 'P1M',
      entitlements: JSON.stringify({ features: ['api'], quotas: {} }),
      // No allowance: ingest is the one INSERT statement, like the baseline.
      usage_components: JSON.stringify([{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 0 }]),
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
    const apiCustomer = 'cus_bench_api';
    const baseCustomer = 'cus_bench_raw';
    for (const id of [apiCustomer, baseCustomer]) {
      await call('POST', '/v1/customers', { id, email: `${id}@example.com`, plan: 'metered', paymentMethod: 'tok_visa' });
    }
    progress(`ingest: customers active; ${opts.events} events per side, batches of ${opts.batchSize}, ${opts.concurrency} in flight, ${opts.rounds} alternating rounds`);

    const sendApi = async (batch: Event[]) => {
      const r = await call('POST', `/v1/customers/${apiCustomer}/usage`, { events: batch });
      return r.accepted as number;
    };
    const sendRaw = (batch: Event[]) => rawInsert(db, brandId, baseCustomer, batch);

    // Warm-up outside the measurement (JIT, pool, plan cache): one batch each, own ids.
    await sendApi(makeBatches('warm', Math.min(opts.batchSize, 1_000), opts.batchSize)[0]!);
    await sendRaw(makeBatches('warm', Math.min(opts.batchSize, 1_000), opts.batchSize)[0]!);

    const perRound = Math.ceil(opts.events / opts.rounds);
    const rounds = Array.from({ length: opts.rounds }, (_, r) => Math.max(0, Math.min(perRound, opts.events - r * perRound)));
    const apiBatches = rounds.map((n, r) => makeBatches(`a${r}`, n, opts.batchSize));
    const rawBatches = rounds.map((n, r) => makeBatches(`a${r}`, n, opts.batchSize));
    const totals = { api: 0, raw: 0, apiDup: 0, rawDup: 0 };
    let apiStored = 0;
    let rawStored = 0;
    for (let r = 0; r < opts.rounds; r += 1) {
      const raw = await drive(rawBatches[r]!, opts.concurrency, sendRaw);
      const api = await drive(apiBatches[r]!, opts.concurrency, sendApi);
      totals.raw += raw.ms;
      totals.api += api.ms;
      rawStored += raw.stored;
      apiStored += api.stored;
      progress(`ingest round ${r + 1}/${opts.rounds}: api ${Math.round((rounds[r]! * 1000) / api.ms)} ev/s, raw INSERT ${Math.round((rounds[r]! * 1000) / raw.ms)} ev/s`);
    }
    if (apiStored !== opts.events || rawStored !== opts.events) throw new Error(`stored ${apiStored} (api) / ${rawStored} (raw) of ${opts.events}`);

    progress('ingest: re-sending every batch (all duplicates)…');
    let apiDupStored = 0;
    let rawDupStored = 0;
    for (let r = 0; r < opts.rounds; r += 1) {
      const raw = await drive(rawBatches[r]!, opts.concurrency, sendRaw);
      const api = await drive(apiBatches[r]!, opts.concurrency, sendApi);
      totals.rawDup += raw.ms;
      totals.apiDup += api.ms;
      rawDupStored += raw.stored;
      apiDupStored += api.stored;
    }
    if (apiDupStored !== 0 || rawDupStored !== 0) throw new Error(`duplicates stored: ${apiDupStored} (api) / ${rawDupStored} (raw)`);
    const count = async (c: string) => Number((await db('usage_events').where({ brand_id: brandId, customer_id: c }).count({ n: '*' }))[0]!.n);
    const warm = Math.min(opts.batchSize, 1_000);
    if ((await count(apiCustomer)) !== opts.events + warm || (await count(baseCustomer)) !== opts.events + warm) {
      throw new Error('row counts after the run do not match the events sent');
    }
    return {
      options: opts,
      api: rate(opts.events, totals.api),
      baseline: rate(opts.events, totals.raw),
      apiDuplicates: rate(opts.events, totals.apiDup),
      baselineDuplicates: rate(opts.events, totals.rawDup),
    };
  } finally {
    await server.close();
    if (worker.getState() === 'RUNNING') worker.shutdown();
    await workerRun.catch(() => undefined);
    await env.teardown();
  }
}
