/**
 * A billing-period close for many customers at once: every customer's period ends at the same
 * moment T; measured from T until every period invoice is finalized and charged (paid), with the
 * worker's peak memory. The worker is the real one (workers/worker.ts) in a child process so its
 * RSS is its own; the Temporal dev server, PostgreSQL, the sandbox gateway and a counting SMTP
 * server are the same as everywhere else.
 *
 * Setup, not measured: the customers are created straight in the state activation leaves them
 * in (the customers row, and a customer workflow started with the carried state of an active
 * subscription whose first period ends at T), instead of running 10,000 onboardings (measured
 * on their own in onboarding.ts). Usage goes in through recordUsage, the API's bulk statement.
 *
 * Baseline (same run, same server, same worker process set-up): as many bare workflows, each
 * waiting on a timer until T' and then running the same number of no-op activities as one close
 * (finalize, present, charge), measured from T' until all have completed.
 */
import { ChildProcess, fork } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { recordUsage } from '../data/usage';
import { checkLedger } from '../data/ledger';
import { balanceParams, INVOICE_BALANCE_SQL } from '../data/payments';
import { customerWorkflowId } from '../domain/ids';
import { billingPeriod } from '../domain/period';
import { ensureBrand } from '../infra/brands';
import { locateBinary, sdkExecutable, TEMPORAL_CLI } from '../infra/temporal-binaries';
import { customerWorkflow } from '../workflows/customer';
import { CustomerState, SA, SEARCH_ATTRIBUTE_KEYS } from '../workflows/shared';
import type { CloseWorkerConfig, CloseWorkerReport } from './close-worker';
import { BenchInfra, progress, stepsOf, WEBHOOK_SECRET } from './infra';

export interface CloseOptions {
  customers: number;
  eventsPerCustomer: number;
  /** Workflow starts in flight during setup. */
  startConcurrency: number;
  /** Give up waiting after this long (the result is then marked incomplete). */
  timeoutMs: number;
  baseline: boolean;
  /** Write a V8 CPU profile of the worker to this folder. */
  cpuProfileDir?: string;
}

export interface CloseSide {
  /** From the period end (or the baseline's timer) until every customer was done, ms. */
  ms: number;
  /** From the period end until every period invoice was finalized (real side only). */
  finalizedMs?: number;
  done: number;
  complete: boolean;
  peakRssBytes: number;
  maxRssBytes: number;
  /** Customers whose workflow was started only after T (setup overran the lead time). */
  startedLate: number;
  setupMs: number;
  /** Worker CPU time (user+system) during the measured interval, ms. */
  cpuMs: number;
  pid?: number;
}

export interface CloseResult {
  options: Omit<CloseOptions, 'cpuProfileDir'>;
  real: CloseSide;
  baseline?: CloseSide;
  activitiesPerClose: number;
  /** The activities (and child workflows) one close ran, from a closed run's history. */
  closeSteps: string[];
  closedRunEvents: number;
  ledgerBalanced: boolean;
  emails: number;
  usageIngestMs: number;
  profile?: ProfileSummary;
  workflowProfile?: ProfileSummary;
  /** What the database sessions were doing during the close (pg_stat_activity, sampled every 250 ms), busy sessions only. */
  pgActivity: PgActivity;
  /** EXPLAIN ANALYZE of the close's hot statements on the database as the close left it. */
  plans?: QueryPlan[];
}

export interface QueryPlan {
  query: string;
  ms: number;
  /** Plan node types, outermost first, with the relation they read. */
  nodes: string[];
}

/**
 * The statements one close runs per customer that read by something other than a primary key,
 * as data/invoices.ts, data/payments.ts and data/ledger.ts send them (same text, real ids).
 */
async function explainHotQueries(db: BenchInfra['db'], brandId: string, customerId: string): Promise<QueryPlan[]> {
  const inv = await db('invoices').where({ brand_id: brandId, customer_id: customerId, billing_key: 'period:1' }).first('id', 'period_start');
  if (!inv) return [];
  const pay = await db('payments').where({ brand_id: brandId, invoice_id: inv.id }).first('gateway', 'gateway_payment_id');
  const q: Array<[string, string, unknown[]]> = [
    [
      'finalize: sum of the invoice\'s usage by metric (data/invoices.ts)',
      db('usage_events').where({ brand_id: brandId, customer_id: customerId, invoice_id: inv.id }).where('occurred_at', '>=', inv.period_start).groupBy('metric').select('metric', db.raw('sum(quantity)::text as quantity')).toString(),
      [],
    ],
    [
      'finalize: the same, as before the fix (by invoice_id alone)',
      db('usage_events').where({ invoice_id: inv.id }).where('occurred_at', '>=', inv.period_start).groupBy('metric').select('metric', db.raw('sum(quantity)::text as quantity')).toString(),
      [],
    ],
    [
      'finalize: customer credit (data/ledger.ts customerAccountMinor)',
      db('ledger_entries as e').join('ledger_transactions as t', 't.id', 'e.transaction_id').where({ 't.brand_id': brandId, 'e.customer_id': customerId, 'e.account': 'customer_credit', 't.currency': 'USD' }).sum({ sum: 'e.amount_minor' }).toString(),
      [],
    ],
    [
      'charge: invoice balance (data/payments.ts invoiceBalanceMinor)',
      `select ${INVOICE_BALANCE_SQL} as balance`,
      balanceParams(brandId, inv.id as string),
    ],
    [
      'charge: invoice balance, as before the fix (credit notes by corrects_invoice_id among the brand\'s invoices)',
      `select (select amount_due_minor from invoices where id = ? and brand_id = ?)
         + coalesce((select sum(amount_due_minor) from invoices where corrects_invoice_id = ? and brand_id = ?), 0)
         - coalesce((select sum(amount_minor) from payments where invoice_id = ? and brand_id = ? and status = 'succeeded'), 0)
         - coalesce((select sum(amount_minor) from write_offs where invoice_id = ? and brand_id = ?), 0) as balance`,
      [inv.id, brandId, inv.id, brandId, inv.id, brandId, inv.id, brandId],
    ],
    [
      'charge: the same gateway payment recorded before (data/payments.ts recordCharge)',
      db('payments').where({ brand_id: brandId, gateway: pay?.gateway ?? 'sandbox', gateway_payment_id: pay?.gateway_payment_id ?? '', status: 'succeeded' }).first('id').toString(),
      [],
    ],
  ];
  const out: QueryPlan[] = [];
  for (const [query, sql, params] of q) {
    const { rows } = await db.raw<{ rows: Array<{ 'QUERY PLAN': any }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params as any[]);
    const plan = rows[0]!['QUERY PLAN'][0];
    const nodes: string[] = [];
    const walk = (n: any) => {
      nodes.push(`${n['Node Type']}${n['Index Name'] ? ` using ${n['Index Name']}` : ''}${n['Relation Name'] ? ` on ${n['Relation Name']}` : ''}${n['Actual Rows'] !== undefined && n['Relation Name'] ? ` (${n['Actual Rows']} rows${n['Rows Removed by Filter'] ? `, ${n['Rows Removed by Filter']} filtered out` : ''})` : ''}`);
      for (const c of n.Plans ?? []) walk(c);
    };
    walk(plan.Plan);
    out.push({ query, ms: plan['Execution Time'], nodes });
  }
  return out;
}

export interface PgActivity {
  samples: number;
  /** Mean busy sessions per sample. */
  meanBusy: number;
  states: Array<{ state: string; share: number }>;
}

async function samplePg(db: BenchInfra['db'], into: Map<string, number>): Promise<number> {
  const { rows } = await db.raw<{ rows: Array<{ what: string; n: string }> }>(
    `SELECT CASE WHEN state = 'active' THEN 'active: ' || coalesce(wait_event_type || '/' || wait_event, 'on CPU')
                 ELSE state || coalesce(' (' || wait_event_type || '/' || wait_event || ')', '') END AS what, count(*) AS n
       FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle'
      GROUP BY 1`,
  );
  let busy = 0;
  for (const r of rows) {
    into.set(r.what, (into.get(r.what) ?? 0) + Number(r.n));
    busy += Number(r.n);
  }
  return busy;
}

function pgSummary(samples: number, busy: number, into: Map<string, number>): PgActivity {
  const total = [...into.values()].reduce((a, b) => a + b, 0) || 1;
  return {
    samples,
    meanBusy: samples ? busy / samples : 0,
    states: [...into.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([state, n]) => ({ state, share: n / total })),
  };
}

export interface ProfileSummary {
  totalMs: number;
  byArea: Array<{ area: string; ms: number; share: number }>;
  top: Array<{ fn: string; where: string; ms: number; share: number }>;
}

const quietLogger = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: console.error, log: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ChildWorker {
  child: ChildProcess;
  cpu(): Promise<number>;
  stop(): Promise<CloseWorkerReport>;
}

/** CPU time (user + system, ms) of a process from /proc (Linux); 0 elsewhere. */
function procCpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

async function startChild(config: CloseWorkerConfig, cpuProfileDir?: string): Promise<ChildWorker> {
  const child = fork(path.join(__dirname, 'close-worker.js'), [], {
    env: { ...process.env, BENCH_WORKER: JSON.stringify(config) },
    execArgv: cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir] : [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let report: CloseWorkerReport | undefined;
  const exited = new Promise<void>((resolve, reject) => {
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${config.kind} worker exited with ${code}`))));
  });
  child.on('message', (m: any) => {
    if (m?.type === 'stopped') report = m;
  });
  await new Promise<void>((resolve, reject) => {
    child.on('message', (m: any) => m?.type === 'ready' && resolve());
    exited.catch(reject);
  });
  return {
    child,
    cpu: async () => procCpuMs(child.pid!),
    stop: async () => {
      child.send('stop');
      await exited;
      if (!report) throw new Error(`${config.kind} worker did not report its memory`);
      return report;
    },
  };
}

/** Summarizes a .cpuprofile: self time by area (package or project folder) and the top functions. */
export function summarizeProfile(file: string): ProfileSummary {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }>;
    samples: number[];
    timeDeltas: number[];
  };
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i += 1) selfUs.set(prof.samples[i]!, (selfUs.get(prof.samples[i]!) ?? 0) + (prof.timeDeltas[i] ?? 0));
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (!us) continue;
    total += us;
    const url = n.callFrame.url;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    const project = /\/dist\/([^/]+)\//.exec(url)?.[1];
    const fn = n.callFrame.functionName || '(anonymous)';
    const area = pkg ?? (project ? `closeloop ${project}/` : url.startsWith('node:') ? 'node core' : url ? 'other' : fn.startsWith('(') ? fn : 'native/builtin');
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    const where = url ? `${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${fn} ${where}`;
    const e = byFn.get(key) ?? { fn, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  const ms = (us: number) => us / 1000;
  return {
    totalMs: ms(total),
    byArea: [...byArea.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([area, us]) => ({ area, ms: ms(us), share: us / total })),
    top: [...byFn.values()].sort((a, b) => b.us - a.us).slice(0, 15).map((e) => ({ fn: e.fn, where: e.where, ms: ms(e.us), share: e.us / total })),
  };
}

async function count(db: BenchInfra['db'], table: string, where: Record<string, unknown>): Promise<number> {
  const rows = await db(table).where(where).count({ n: '*' });
  return Number(rows[0]!.n);
}

export async function benchClose(infra: BenchInfra, opts: CloseOptions): Promise<CloseResult> {
  const { db } = infra;
  progress(`close: ${opts.customers} customers × ${opts.eventsPerCustomer} usage events; starting the Temporal dev server…`);
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: sdkExecutable(locateBinary(TEMPORAL_CLI)), searchAttributes: SEARCH_ATTRIBUTE_KEYS },
  });
  const client: Client = env.client;
  const bundlePath = path.join(infra.tmp, 'customer-workflows.js');
  fs.writeFileSync(bundlePath, infra.bundle.code);
  const workerBase = {
    address: env.address,
    databaseUrl: infra.url,
    smtp: { host: infra.mail.host, port: infra.mail.port },
    gatewayUrl: infra.sandbox.url,
    webhookSecret: WEBHOOK_SECRET,
  };
  try {
    // ---- setup: brand, plan, customers rows, usage -------------------------------------
    const brandId = 'bench-close';
    await ensureBrand(db, { id: brandId, name: 'Bench close', currency: 'USD', mode: 'sandbox' });
    const plan = {
      code: 'metered',
      version: 1,
      name: 'Metered',
      fee: 2900,
      period: 'P1M',
    };
    await db('plans').insert({
      brand_id: brandId,
      code: plan.code,
      version: plan.version,
      name: plan.name,
      currency: 'USD',
      recurring_fee_minor: plan.fee,
      cost_to_serve_minor: 500,
      billing_period: plan.period,
      entitlements: JSON.stringify({ features: ['api'], quotas: {} }),
      usage_components: JSON.stringify([{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 50 }]),
    });
    const ids = Array.from({ length: opts.customers }, (_, i) => `cus_close_${String(i).padStart(6, '0')}`);
    for (let i = 0; i < ids.length; i += 1000) {
      await db('customers').insert(
        ids.slice(i, i + 1000).map((id) => ({ brand_id: brandId, id, email: `${id}@example.com`, stage: 'active', workflow_id: customerWorkflowId(brandId, id) })),
      );
    }
    const usageStarted = Date.now();
    const now = Date.now();
    let nextCustomer = 0;
    let ingested = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (nextCustomer < ids.length) {
          const c = nextCustomer++;
          const events = Array.from({ length: opts.eventsPerCustomer }, (_, e) => ({
            id: `ev-${e}`,
            metric: 'api_calls',
            quantity: String(1 + (e % 5)),
            timestamp: new Date(now - 3_600_000 + e * 1_000).toISOString(),
          }));
          await recordUsage(db, { brandId, customerId: ids[c]!, events, totalsFor: [] });
          ingested += 1;
          if (ingested % Math.max(1, Math.round(ids.length / 5)) === 0) progress(`close: usage for ${ingested}/${ids.length} customers`);
        }
      }),
    );
    const usageIngestMs = Date.now() - usageStarted;

    // ---- the real close -------------------------------------------------------------------
    let firstRunId: string | undefined;
    const pgStates = new Map<string, number>();
    let pgSamples = 0;
    let pgBusy = 0;
    const real = await (async (): Promise<CloseSide> => {
      const taskQueue = `bench-close-${crypto.randomUUID()}`;
      const worker = await startChild({ ...workerBase, kind: 'real', taskQueue, bundlePath }, opts.cpuProfileDir);
      const setupStarted = Date.now();
      // The starts run while the worker sets a timer for each; the period ends when they should be done.
      const leadMs = 15_000 + opts.customers * 8;
      const T = Date.now() + leadMs;
      const startedAt = new Date(T);
      startedAt.setUTCMonth(startedAt.getUTCMonth() - 1);
      const period = billingPeriod(startedAt.toISOString(), plan.period, 1);
      if (Date.parse(period.end) !== T) throw new Error('period arithmetic: period 1 does not end at T');
      progress(`close: starting ${ids.length} customer workflows; every period ends at ${new Date(T).toISOString().slice(11, 19)} (in ${Math.round(leadMs / 1000)} s)`);
      let startedLate = 0;
      let started = 0;
      let next = 0;
      await Promise.all(
        Array.from({ length: opts.startConcurrency }, async () => {
          while (next < ids.length) {
            const customerId = ids[next++]!;
            const state: CustomerState = {
              brandId,
              customerId,
              email: `${customerId}@example.com`,
              name: null,
              stage: 'active',
              createdAt: startedAt.toISOString(),
              lead: null,
              subscription: {
                id: crypto.randomUUID(),
                planCode: plan.code,
                planVersion: plan.version,
                planName: plan.name,
                currency: 'USD',
                listPriceMinor: plan.fee,
                discountPercent: 0,
                discountPeriods: null,
                offerRule: null,
                billingPeriod: plan.period,
                startedAt: startedAt.toISOString(),
              },
              entitlements: { features: ['api'], quotas: {} },
              currentPeriod: period,
              balanceMinor: 0,
              billing: { openingInvoiced: true, chargeAttempts: 1, invoices: [] },
              paymentMethod: 'tok_visa',
              dunning: null,
              dunningState: 'none',
              usageAlerts: [],
              chargebacks: [],
              lastActivationError: null,
              stageHistory: [{ stage: 'active', at: startedAt.toISOString() }],
            };
            const handle = await client.workflow.start(customerWorkflow, {
              workflowId: customerWorkflowId(brandId, customerId),
              taskQueue,
              args: [{ brandId, customerId, email: state.email, carried: state }],
              typedSearchAttributes: [
                { key: SA.customerId, value: customerId },
                { key: SA.brandId, value: brandId },
                { key: SA.stage, value: 'active' },
              ],
            });
            if (customerId === ids[0]) firstRunId = handle.firstExecutionRunId;
            if (Date.now() > T) startedLate += 1;
            started += 1;
            if (started % Math.max(1, Math.round(ids.length / 5)) === 0) progress(`close: ${started}/${ids.length} workflows started`);
          }
        }),
      );
      const setupMs = Date.now() - setupStarted;
      if (startedLate > 0) progress(`close: WARNING ${startedLate} workflows were started after the period end (setup overran the lead time)`);
      else progress(`close: all started ${Math.round((T - Date.now()) / 1000)} s before the period end; waiting…`);
      while (Date.now() < T) await sleep(Math.min(1_000, T - Date.now()));
      const cpuAtT = await worker.cpu();
      progress('close: period end reached; waiting for every invoice to be finalized and charged…');
      let finalizedMs: number | undefined;
      let paid = 0;
      let lastReport = 0;
      for (;;) {
        const finalized = await count(db, 'invoices', { brand_id: brandId, billing_key: 'period:1' });
        paid = await count(db, 'invoices', { brand_id: brandId, billing_key: 'period:1', status: 'paid' });
        const elapsed = Date.now() - T;
        if (finalizedMs === undefined && finalized >= ids.length) finalizedMs = elapsed;
        if (paid >= ids.length || elapsed > opts.timeoutMs) break;
        pgBusy += await samplePg(db, pgStates);
        pgSamples += 1;
        if (elapsed - lastReport >= 10_000) {
          lastReport = elapsed;
          progress(`close: +${Math.round(elapsed / 1000)} s: ${finalized} finalized, ${paid} paid of ${ids.length} (${((paid * 1000) / Math.max(1, elapsed)).toFixed(1)}/s; load ${os.loadavg()[0]!.toFixed(1)})`);
        }
        await sleep(250);
      }
      const ms = Date.now() - T;
      const cpuMs = (await worker.cpu()) - cpuAtT;
      // A run goes on after its charge (the upgrade check, then continue-as-new): the run sampled
      // below for the close's steps closes before the worker stops.
      const sample = client.workflow.getHandle(customerWorkflowId(brandId, ids[0]!), firstRunId);
      for (let i = 0; i < 600 && (await sample.describe()).status.name === 'RUNNING'; i += 1) await sleep(100);
      const mem = await worker.stop();
      progress(`close: ${paid}/${ids.length} paid in ${(ms / 1000).toFixed(1)} s; worker peak RSS ${(mem.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
      return { ms, finalizedMs, done: paid, complete: paid >= ids.length, peakRssBytes: mem.peakRssBytes, maxRssBytes: mem.maxRssBytes, startedLate, setupMs, cpuMs, pid: worker.child.pid };
    })();

    const succeeded = await count(db, 'payments', { brand_id: brandId, status: 'succeeded' });
    if (real.complete && succeeded !== ids.length) throw new Error(`close: ${succeeded} succeeded payments for ${ids.length} customers`);
    const ledger = await checkLedger(db, brandId);
    const ledgerBalanced = ledger.unbalanced.length === 0 && ledger.receivablesMismatches.length === 0;

    // Node writes one profile per thread: CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is the
    // main thread (activities, the SDK's core bridge), the others run the workflow sandboxes.
    let profile: ProfileSummary | undefined;
    let workflowProfile: ProfileSummary | undefined;
    if (opts.cpuProfileDir) {
      const pid = String(real.pid);
      const files = fs.readdirSync(opts.cpuProfileDir).filter((f) => f.endsWith('.cpuprofile') && f.split('.')[3] === pid);
      const main = files.find((f) => f.split('.')[4] === '0');
      const wf = files.find((f) => f.split('.')[4] !== '0');
      if (main) profile = summarizeProfile(path.join(opts.cpuProfileDir, main));
      if (wf) workflowProfile = summarizeProfile(path.join(opts.cpuProfileDir, wf));
    }

    const explained = await db('invoices').where({ brand_id: brandId, billing_key: 'period:1', status: 'paid' }).orderBy('customer_id', 'desc').first('customer_id');
    const plans = explained ? await explainHotQueries(db, brandId, explained.customer_id as string) : [];
    // What one close ran: the activities (and child workflows) in the history of a closed run (the
    // first run of a customer whose period invoice was paid; not every customer got there before a timeout).
    const paidRow = real.complete ? undefined : await db('invoices').where({ brand_id: brandId, billing_key: 'period:1', status: 'paid' }).orderBy('customer_id').first('customer_id');
    const sampleId = (paidRow?.customer_id as string | undefined) ?? ids[0]!;
    const sampleRunId =
      sampleId === ids[0] ? firstRunId : (await client.workflow.getHandle(customerWorkflowId(brandId, sampleId)).describe()).raw.workflowExecutionInfo?.firstRunId ?? undefined;
    const closedRun = await client.workflow.getHandle(customerWorkflowId(brandId, sampleId), sampleRunId).fetchHistory();
    const closedEvents = closedRun.events ?? [];
    const activityNames = stepsOf(closedEvents);
    const activitiesPerClose = Math.max(1, activityNames.length);
    progress(`close: one close ran ${activityNames.join(', ')} (${closedEvents.length} history events in the closed run)`);

    // ---- baseline: bare workflows, a timer then the same number of no-op activities -------
    let baseline: CloseSide | undefined;
    if (opts.baseline) {
      const bareBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./bare-workflow'), logger: quietLogger });
      const barePath = path.join(infra.tmp, 'bare-workflows.js');
      fs.writeFileSync(barePath, bareBundle.code);
      const taskQueue = `bench-close-bare-${crypto.randomUUID()}`;
      const worker = await startChild({ ...workerBase, kind: 'bare', taskQueue, bundlePath: barePath });
      const setupStarted = Date.now();
      const leadMs = 15_000 + opts.customers * 8;
      const T = Date.now() + leadMs;
      progress(`close baseline: starting ${ids.length} bare workflows (timer, then ${activitiesPerClose} no-op activities); timers fire in ${Math.round(leadMs / 1000)} s`);
      let next = 0;
      let startedLate = 0;
      const handles: string[] = [];
      await Promise.all(
        Array.from({ length: opts.startConcurrency }, async () => {
          while (next < ids.length) {
            const i = next++;
            const workflowId = `bare-close-${i}-${crypto.randomUUID()}`;
            await client.workflow.start('bareTimerWorkflow', { workflowId, taskQueue, args: [T, activitiesPerClose] });
            handles.push(workflowId);
            if (Date.now() > T) startedLate += 1;
          }
        }),
      );
      const setupMs = Date.now() - setupStarted;
      while (Date.now() < T) await sleep(Math.min(1_000, T - Date.now()));
      const cpuAtT = await worker.cpu();
      progress('close baseline: timers fired; waiting for every bare workflow to complete…');
      let done = 0;
      let lastReport = 0;
      for (;;) {
        done = (await client.workflow.count(`TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Completed'`)).count;
        const elapsed = Date.now() - T;
        if (done >= ids.length || elapsed > opts.timeoutMs) break;
        if (elapsed - lastReport >= 10_000) {
          lastReport = elapsed;
          progress(`close baseline: +${Math.round(elapsed / 1000)} s: ${done} of ${ids.length} completed`);
        }
        await sleep(250);
      }
      const ms = Date.now() - T;
      const cpuMs = (await worker.cpu()) - cpuAtT;
      const mem = await worker.stop();
      progress(`close baseline: ${done}/${ids.length} completed in ${(ms / 1000).toFixed(1)} s; worker peak RSS ${(mem.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
      baseline = { ms, done, complete: done >= ids.length, peakRssBytes: mem.peakRssBytes, maxRssBytes: mem.maxRssBytes, startedLate, setupMs, cpuMs };
    }

    const { cpuProfileDir: _dir, ...options } = opts;
    const result: CloseResult = {
      options,
      real,
      baseline,
      activitiesPerClose,
      closeSteps: activityNames,
      closedRunEvents: closedEvents.length,
      ledgerBalanced,
      emails: infra.mail.received(),
      usageIngestMs,
      profile,
      workflowProfile,
      pgActivity: pgSummary(pgSamples, pgBusy, pgStates),
      plans,
    };
    // BENCH_SAVE_BEFORE=<label>: keep this run's profile as the "before" shown next to later runs.
    if (process.env.BENCH_SAVE_BEFORE) {
      const file = path.resolve(__dirname, '..', '..', 'bench', 'profile-before.json');
      const b = baseline;
      fs.writeFileSync(
        file,
        `${JSON.stringify(
          {
            label: process.env.BENCH_SAVE_BEFORE,
            savedAt: new Date().toISOString(),
            customers: opts.customers,
            eventsPerCustomer: opts.eventsPerCustomer,
            closeMs: real.ms,
            finalizedMs: real.finalizedMs,
            baselineMs: b?.ms,
            baselineActivities: activitiesPerClose,
            workerCpuMs: real.cpuMs,
            baselineCpuMs: b?.cpuMs,
            peakRssBytes: real.peakRssBytes,
            loadAverage: os.loadavg()[0],
            profile,
            workflowProfile,
            pgActivity: result.pgActivity,
            plans,
          },
          null,
          2,
        )}\n`,
      );
      progress(`close: saved this run as the "before" profile in ${path.relative(process.cwd(), file)}`);
    }
    return result;
  } finally {
    await env.teardown();
  }
}
