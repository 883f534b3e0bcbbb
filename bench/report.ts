/** The summary table (markdown), printed on stdout and written to docs/benchmarks.md. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CloseResult, PgActivity, ProfileSummary, QueryPlan } from './close';
import type { HistoryResult } from './history';
import type { IngestResult } from './ingest';

/**
 * A period's run: the close's activities, its message child workflows (start, started, completed
 * events each) and continue-as-new come to about 45 events; twice that would mean something grows.
 */
const HISTORY_EVENTS_BOUND = 90;
import type { OnboardingResult } from './onboarding';

export interface BenchResults {
  ingest?: IngestResult;
  onboarding?: OnboardingResult;
  close?: CloseResult;
  history?: HistoryResult;
  errors?: Array<{ part: string; message: string }>;
  generatedAt?: string;
  /** Parts taken from earlier runs (`BENCH_MERGE_JSON`), by the run that measured them. */
  mergedFrom?: Array<{ parts: string[]; generatedAt: string }>;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => `${n.toFixed(1)} ms`;
const ratio = (n: number) => n.toFixed(2);
const pass = (ok: boolean) => (ok ? 'yes' : '**no**');

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown CPU'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${process.platform}-${process.arch}, Node.js ${process.version}`;
}

const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20).toLocaleString('en-US')} MiB`;
const minutes = (msv: number) => `${(msv / 60_000).toFixed(2)} min (${(msv / 1000).toFixed(1)} s)`;

export function table(results: BenchResults): string {
  const { ingest, onboarding, close, history } = results;
  const lines: string[] = [];
  if (results.mergedFrom?.length) {
    const runs = results.mergedFrom.map((m) => `the ${m.parts.join(', ')} results are those of the run of ${m.generatedAt}`).join('; ');
    lines.push(`${runs[0]!.toUpperCase()}${runs.slice(1)} (same scripts, \`BENCH_MERGE_JSON\`); the rest was measured in this run.`, '');
  }
  for (const e of results.errors ?? []) lines.push(`**The ${e.part} benchmark failed in this run:** ${e.message.replace(/\s+/g, ' ')}`, '');
  if (ingest) {
    const o = ingest.options;
    const r = ingest.api.perSecond / ingest.baseline.perSecond;
    const rd = ingest.apiDuplicates.perSecond / ingest.baselineDuplicates.perSecond;
    lines.push(
      `### Usage ingest (${int(o.events)} events per side, batches of ${int(o.batchSize)}, ${o.concurrency} requests in flight, ${o.rounds} alternating rounds)`,
      '',
      '| measurement | HTTP API (events/s) | raw INSERT baseline (events/s) | ratio api/baseline | target | met |',
      '|---|---:|---:|---:|---|---|',
      `| new events | ${int(ingest.api.perSecond)} | ${int(ingest.baseline.perSecond)} | ${ratio(r)} | ≥ 20,000 events/s and ≥ 0.5 | ${pass(ingest.api.perSecond >= 20_000 && r >= 0.5)} |`,
      `| same batches re-sent (all duplicates) | ${int(ingest.apiDuplicates.perSecond)} | ${int(ingest.baselineDuplicates.perSecond)} | ${ratio(rd)} | — | — |`,
      '',
    );
  }
  if (onboarding) {
    const o = onboarding.options;
    const r = onboarding.perSecond / onboarding.baselinePerSecond;
    lines.push(
      `### Onboarding (${int(o.customers)} customers per side, ${o.concurrency} in flight, ${o.rounds} alternating rounds)`,
      '',
      '| measurement | onboarding through the API | bare workflow baseline | ratio onboarding/baseline | target | met |',
      '|---|---:|---:|---:|---|---|',
      `| customers/s | ${onboarding.perSecond.toFixed(1)} | ${onboarding.baselinePerSecond.toFixed(1)} | ${ratio(r)} | ≥ 0.5 | ${pass(r >= 0.5)} |`,
      `| median latency of one | ${ms(onboarding.medianMs)} | ${ms(onboarding.baselineMedianMs)} | | | |`,
      '',
      `One onboarding is \`POST /v1/leads\` (captures the lead, starts the customer workflow) then \`POST /v1/customers/:id/activate\``,
      `(the activate Workflow Update: offer, provisioning saga, first invoice finalized, presented by email with its PDF, charged on`,
      `the sandbox gateway, welcome message). From a customer's history (${onboarding.historyEventsAtActivation} events when activation returned) it runs ${onboarding.activitiesPerOnboarding} steps:`,
      `${(onboarding.steps ?? []).join(', ')}.`,
      `The baseline is a workflow running ${onboarding.activitiesPerOnboarding} no-op activities in sequence (one per activity or child workflow), started and awaited through the client, on the same`,
      'dev server, with the same concurrency, its worker in the same process as the real one.',
      '',
    );
  }
  if (close) {
    const o = close.options;
    const rl = close.real;
    const b = close.baseline;
    const targetMs = 5 * 60_000;
    lines.push(
      `### Billing-period close (${int(o.customers)} customers × ${int(o.eventsPerCustomer)} usage events${close.profile ? '; worker run with `--cpu-prof`' : ''})`,
      '',
      '| measurement | period close | bare-workflow baseline | ratio close/baseline | target | met |',
      '|---|---:|---:|---:|---|---|',
      `| period end → every invoice finalized | ${rl.finalizedMs === undefined ? 'not reached' : minutes(rl.finalizedMs)} | | | | |`,
      `| period end → every invoice finalized **and charged** | ${rl.complete ? minutes(rl.ms) : `not reached in ${minutes(rl.ms)} (${int(rl.done)} paid)`} | ${b ? (b.complete ? minutes(b.ms) : `not reached (${int(b.done)})`) : '—'} | ${b && rl.complete && b.complete ? ratio(rl.ms / b.ms) : '—'} | ≤ 5 min | ${pass(rl.complete && rl.ms <= targetMs)} |`,
      `| customers closed per second | ${(rl.done / (rl.ms / 1000)).toFixed(1)} | ${b ? (b.done / (b.ms / 1000)).toFixed(1) : '—'} | | | |`,
      `| worker peak RSS (sampled every 100 ms / kernel maxrss) | ${mib(rl.peakRssBytes)} / ${mib(rl.maxRssBytes)} | ${b ? `${mib(b.peakRssBytes)} / ${mib(b.maxRssBytes)}` : '—'} | | ≤ 1 GiB | ${pass(Math.max(rl.peakRssBytes, rl.maxRssBytes) <= 2 ** 30)} |`,
      `| worker CPU time during the close | ${(rl.cpuMs / 1000).toFixed(1)} s | ${b ? `${(b.cpuMs / 1000).toFixed(1)} s` : '—'} | | | |`,
      `| ledger balanced, receivables match the documents | ${close.ledgerBalanced ? 'yes' : '**no**'} | | | | |`,
      '',
      `Setup (not measured): usage ${int(o.customers * o.eventsPerCustomer)} events through \`recordUsage\` in ${(close.usageIngestMs / 1000).toFixed(1)} s; ${int(o.customers)} customer workflows`,
      `started in ${(rl.setupMs / 1000).toFixed(1)} s${rl.startedLate ? ` (**${int(rl.startedLate)} after the period end**, so the close time includes their start)` : ', all before the period end'}.`,
      'Each customer is created in the state activation leaves it in (customers row; customer workflow started with the',
      'carried state of an active subscription whose first period ends at the same moment T), then the real worker',
      `(workers/worker.ts, in a child process whose RSS is sampled) closes the period: timer, then ${(close.closeSteps ?? []).join(' → ')}, then`,
      `continue-as-new (${close.closedRunEvents ?? '?'} history events in a closed run). ${int(close.emails)} emails were received in total.`,
      b
        ? `Baseline: as many bare workflows, each on a timer that fires at one moment T′, then ${close.activitiesPerClose} no-op activities (one per activity or child workflow of a close), on the same dev server with the same kind of child worker.`
        : 'No baseline in this run (BENCH_CLOSE_BASELINE=0).',
      '',
    );
    lines.push(...pgLines('Database sessions during this close', close.pgActivity));
    if (close.plans?.length) lines.push(...planLines('Hot statements of a close (EXPLAIN ANALYZE on the database as the close left it)', close.plans));
    if (close.profile) lines.push(...profileLines('CPU profile of the worker during this run, main thread (activities, SDK core bridge)', close.profile));
    if (close.workflowProfile) lines.push(...profileLines('CPU profile of the worker during this run, workflow thread', close.workflowProfile));
    const before = readSavedProfile();
    if (before) {
      const perCustomer = (cpuMs: number | undefined, n: number) => (cpuMs === undefined ? '—' : `${(cpuMs / n).toFixed(1)} ms`);
      const br = before.baselineMs ? before.closeMs / before.baselineMs : undefined;
      const ar = b && rl.complete && b.complete ? rl.ms / b.ms : undefined;
      lines.push(
        `#### Before and after the fix`,
        '',
        `Before: ${before.label} (saved ${before.savedAt.slice(0, 16).replace('T', ' ')} UTC in \`bench/profile-before.json\`, 1-minute load average ${before.loadAverage.toFixed(1)} at the end). After: this run.`,
        '',
        '| | before | after (this run) |',
        '|---|---:|---:|',
        `| customers × events | ${int(before.customers)} × ${before.eventsPerCustomer} | ${int(o.customers)} × ${o.eventsPerCustomer} |`,
        `| period end → all finalized | ${before.finalizedMs === undefined ? '—' : `${(before.finalizedMs / 1000).toFixed(1)} s`} | ${rl.finalizedMs === undefined ? '—' : `${(rl.finalizedMs / 1000).toFixed(1)} s`} |`,
        `| period end → all finalized and charged | ${(before.closeMs / 1000).toFixed(1)} s | ${(rl.ms / 1000).toFixed(1)} s |`,
        `| customers closed per second | ${((before.customers * 1000) / before.closeMs).toFixed(1)} | ${((rl.done * 1000) / rl.ms).toFixed(1)} |`,
        `| bare-workflow baseline | ${before.baselineMs ? `${(before.baselineMs / 1000).toFixed(1)} s (${before.baselineActivities ?? 3} no-op activities${before.baselineActivities ? '' : ': that version of the bench fixed the count at 3'})` : '—'} | ${b ? `${(b.ms / 1000).toFixed(1)} s (${close.activitiesPerClose} no-op activities)` : '—'} |`,
        `| ratio close/baseline (lower is better) | ${br ? ratio(br) : '—'} | ${ar ? ratio(ar) : '—'} |`,
        `| worker CPU per customer closed | ${perCustomer(before.workerCpuMs, before.customers)} | ${perCustomer(rl.cpuMs, Math.max(1, rl.done))} |`,
        `| worker peak RSS | ${mib(before.peakRssBytes)} | ${mib(rl.peakRssBytes)} |`,
        '',
      );
      if (before.pgActivity) lines.push(...pgLines('Database sessions during the close, before the fix', before.pgActivity));
      if (before.plans?.length) lines.push(...planLines('Hot statements, before the fix', before.plans));
      if (before.profile) lines.push(...profileLines('CPU profile of the worker before the fix, main thread', before.profile));
      if (before.workflowProfile) lines.push(...profileLines('CPU profile of the worker before the fix, workflow thread', before.workflowProfile));
    }
  }
  if (history) {
    // The last run is the open one (its period has just begun); the others each lived a whole period.
    const completed = history.lengths.length > 1 ? history.lengths.slice(0, -1) : history.lengths;
    const min = Math.min(...completed);
    const max = Math.max(...completed);
    // Flat means no growth with the run's number: a run's count also depends on whether the invoice
    // email it started had finished before the run's end (if not, the wait for it adds a timer and a
    // workflow task), so runs take one of a few counts; the latest ones must take no more than the first.
    const tenth = Math.max(1, Math.floor(completed.length / 10));
    const flat = Math.max(...completed.slice(-tenth)) <= Math.max(...completed.slice(0, tenth));
    const counts = [...new Set(completed)].sort((a, b) => a - b);
    const rr = history.lastReplayMs / history.firstReplayMs;
    const ra = history.lastAmortizedMs / history.firstAmortizedMs;
    lines.push(
      `### History per run (${history.periods} monthly periods on the time-skipping server, ${history.runs} runs)`,
      '',
      '| measurement | value | target | met |',
      '|---|---:|---|---|',
      `| history events per completed run, min / max (${completed.length} runs; counts seen: ${counts.join(', ')}) | ${min} / ${max} | bounded (≤ ${HISTORY_EVENTS_BOUND}) and flat (the latest tenth of the runs no bigger than the first tenth) | ${pass(flat && max <= HISTORY_EVENTS_BOUND)} |`,
      `| history events of the first / latest completed run | ${completed[0]} / ${completed.at(-1)} | | |`,
      `| history events of the open run so far | ${history.lengths.at(-1)} | | |`,
      `| replay of the first run's history (median of ${history.replayRepeats}) | ${ms(history.firstReplayMs)} | | |`,
      `| replay of the latest completed run's history (median of ${history.replayRepeats}) | ${ms(history.lastReplayMs)} | | |`,
      `| ratio latest/first, single replay | ${ratio(rr)} | | |`,
      `| replay per history, first / latest completed run (${history.amortizedBatch} in one replay worker, median of 4 rounds) | ${ms(history.firstAmortizedMs)} / ${ms(history.lastAmortizedMs)} | | |`,
      `| ratio latest/first, amortized replay | ${ratio(ra)} | flat (≈ 1) | ${pass(ra <= 1.5)} |`,
      `| wall time for the ${history.periods} periods (server start included) | ${(history.wallMs / 1000).toFixed(1)} s | | |`,
      '',
      `History events per run, in order (the last is open): ${history.lengths.join(', ')}.`,
      'A single replay is `Worker.runReplayHistory` with the production bundle, so it includes creating the replay worker',
      '(noisy, tens of ms); the amortized rows push the same history through one `Worker.runReplayHistories` worker.',
      '',
    );
  }
  return lines.join('\n');
}

function profileLines(title: string, p: ProfileSummary): string[] {
  return [
    `#### ${title}: ${(p.totalMs / 1000).toFixed(1)} s of samples`,
    '',
    '| area (self time) | share |',
    '|---|---:|',
    ...p.byArea.slice(0, 8).map((a) => `| ${a.area} | ${(a.share * 100).toFixed(1)} % |`),
    '',
    '| hottest functions (self time) | where | share |',
    '|---|---|---:|',
    ...p.top.slice(0, 10).map((f) => `| \`${f.fn}\` | ${f.where} | ${(f.share * 100).toFixed(1)} % |`),
    '',
  ];
}

function planLines(title: string, plans: QueryPlan[]): string[] {
  return [
    `#### ${title}`,
    '',
    '| statement | plan | time |',
    '|---|---|---:|',
    ...plans.map((p) => `| ${p.query} | ${p.nodes.join(' → ')} | ${p.ms.toFixed(2)} ms |`),
    '',
  ];
}

function pgLines(title: string, p: PgActivity): string[] {
  return [
    `#### ${title}: ${p.meanBusy.toFixed(1)} busy sessions on average (${p.samples} samples of pg_stat_activity)`,
    '',
    '| what a busy session was doing | share |',
    '|---|---:|',
    ...p.states.map((st) => `| ${st.state} | ${(st.share * 100).toFixed(1)} % |`),
    '',
  ];
}

interface SavedBefore {
  label: string;
  savedAt: string;
  customers: number;
  eventsPerCustomer: number;
  closeMs: number;
  finalizedMs?: number;
  baselineMs?: number;
  baselineActivities?: number;
  workerCpuMs?: number;
  baselineCpuMs?: number;
  peakRssBytes: number;
  loadAverage: number;
  profile?: ProfileSummary;
  workflowProfile?: ProfileSummary;
  pgActivity?: PgActivity;
  plans?: QueryPlan[];
}

/** bench/profile-before.json: a close run saved before the fix (BENCH_SAVE_BEFORE=<label>, see README). */
function readSavedProfile(): SavedBefore | undefined {
  const file = path.resolve(__dirname, '..', '..', 'bench', 'profile-before.json');
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function document(body: string, totalMs: number, load: number[] = []): string {
  const loadText = load.length
    ? `System load while it ran (1-minute load average, sampled every 5 s): median ${[...load].sort((a, b) => a - b)[Math.floor(load.length / 2)]!.toFixed(1)}, max ${Math.max(...load).toFixed(1)} on ${os.cpus().length} cores${
        Math.max(...load) > os.cpus().length * 1.5 ? ' — other work shared the machine, so absolute numbers are depressed; the ratios against baselines measured in the same run are the comparable figures' : ''
      }.`
    : '';
  return [
    '# Benchmarks',
    '',
    `<!-- Generated by \`npm run bench\`; do not edit by hand. -->`,
    '',
    `Generated by \`npm run bench\` on ${new Date().toISOString()} in ${(totalMs / 1000).toFixed(0)} s, on ${machine()}.`,
    loadText,
    '',
    'Every measurement runs against one embedded PostgreSQL (temporary data dir) and, where Temporal is involved, a',
    '`temporal server start-dev` (or the time-skipping test server for history); each is measured side by side with',
    'its baseline in the same run. Sizes (environment, defaults in brackets): `BENCH_EVENTS` (200000), `BENCH_BATCH`',
    '(5000), `BENCH_CONCURRENCY` (4), `BENCH_ROUNDS` (4); `BENCH_ONBOARD_CUSTOMERS` (400), `BENCH_ONBOARD_CONCURRENCY` (20),',
    '`BENCH_ONBOARD_ROUNDS` (4); `BENCH_CLOSE_CUSTOMERS` (2000; the 10,000 of the target: `BENCH_ONLY=close BENCH_CLOSE_CUSTOMERS=10000`),',
    '`BENCH_CLOSE_EVENTS` (100), `BENCH_CLOSE_BASELINE` (1),',
    '`BENCH_CLOSE_TIMEOUT_S` (900), `BENCH_CLOSE_PROFILE` (a folder: CPU-profile the worker); `BENCH_PERIODS` (120),',
    '`BENCH_REPLAYS` (11); `BENCH_ONLY=ingest,onboarding,close,history` runs some parts (the document then holds those only).',
    '',
    'Ingest: the API side is `POST /v1/customers/:id/usage` on the real Express app (auth, validation of every event,',
    'the customer and plan lookup, the one `INSERT … SELECT FROM jsonb_to_recordset … ON CONFLICT DO NOTHING`);',
    'the baseline is that same INSERT statement sent straight through knex with the same rows, batch size and',
    'concurrency. The two alternate in rounds so both see the table grow alike.',
    '',
    body,
  ].join('\n');
}
