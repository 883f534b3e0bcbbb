/**
 * Reconciliation runs, their items and the gateway's payouts in PostgreSQL. A run is unique per
 * (brand, gateway, day): a re-run rewrites the same run's items in one transaction, and a payout
 * posts its ledger transaction once (a re-run that finds other totals posts only the difference).
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { SettlementLine } from '../gateway/adapter';
import { payoutEntries, type OurRecord, type OurRecordType, type ReconciliationCounts, type ReconciliationItem } from '../domain/reconciliation';
import type { Db } from '../infra/db';
import { postTransaction } from './ledger';

export const DEFAULT_OPERATOR_EMAIL = 'ops@closeloop.local';

export interface RunKey {
  brandId: string;
  gateway: string;
  reportDate: string;
}

const newId = (prefix: string) => `${prefix}_${crypto.randomUUID().replace(/-/g, '')}`;

/** Opens the day's run, or reopens it for a re-run: the same id either way. */
export async function startRun(db: Db, key: RunKey): Promise<{ runId: string }> {
  const [row] = await db('reconciliation_runs')
    .insert({ id: newId('rr'), brand_id: key.brandId, gateway: key.gateway, report_date: key.reportDate, status: 'running' })
    .onConflict(['brand_id', 'gateway', 'report_date'])
    .merge({ status: 'running', started_at: db.fn.now(), finished_at: null, error: null })
    .returning('id');
  return { runId: row.id as string };
}

export async function runKey(db: Db | Knex.Transaction, runId: string): Promise<RunKey | undefined> {
  const row = await db('reconciliation_runs').where({ id: runId }).first('brand_id', 'gateway', db.raw('report_date::text as report_date'));
  return row ? { brandId: row.brand_id, gateway: row.gateway, reportDate: row.report_date } : undefined;
}

export async function failRun(db: Db, runId: string, error: string): Promise<void> {
  await db('reconciliation_runs').where({ id: runId }).update({ status: 'failed', finished_at: db.fn.now(), error: error.slice(0, 2000) });
}

/** Which brand each gateway payment belongs to, from our payments (any brand). */
export async function paymentOwners(db: Db, gateway: string, gatewayPaymentIds: readonly string[]): Promise<Map<string, string>> {
  const owners = new Map<string, string>();
  for (let i = 0; i < gatewayPaymentIds.length; i += 1000) {
    const rows = await db('payments')
      .where({ gateway })
      .whereIn('gateway_payment_id', gatewayPaymentIds.slice(i, i + 1000))
      .distinct('gateway_payment_id', 'brand_id');
    for (const r of rows) owners.set(r.gateway_payment_id, r.brand_id);
  }
  return owners;
}

/**
 * Tables of movements besides payments, read only when they exist: refunds and chargebacks are
 * written by other parts of Closeloop, which may not be deployed yet.
 */
const OPTIONAL_SOURCES: Array<{ type: OurRecordType; table: string; gatewayIdColumn: string }> = [
  { type: 'refund', table: 'refunds', gatewayIdColumn: 'gateway_refund_id' },
  { type: 'chargeback', table: 'chargebacks', gatewayIdColumn: 'gateway_chargeback_id' },
];

interface SourceRow {
  id: string;
  gateway_id: string | null;
  gateway_payment_id: string | null;
  amount_minor: string | number;
  currency: string;
  created_at: Date;
}

/**
 * Our records the day's report should carry: succeeded payments (and refunds and chargebacks,
 * where those tables exist) of the brand at this gateway that we dated the report day, plus
 * any of ours the report carries whatever day we dated them.
 */
export async function loadOurRecords(db: Db, key: RunKey, reportedIds: Record<OurRecordType, readonly string[]>): Promise<OurRecord[]> {
  const start = `${key.reportDate}T00:00:00.000Z`;
  // What the gateway collected for a payment: the part applied to its invoice plus, where
  // remittance records one, the overpayment kept as customer credit.
  const collected = 'credited_minor' in (await db('payments').columnInfo()) ? 'amount_minor + credited_minor' : 'amount_minor';
  const sources: Array<{ type: OurRecordType; gatewayIdColumn: string; query: Knex.QueryBuilder }> = [
    {
      type: 'payment',
      gatewayIdColumn: 'gateway_payment_id',
      query: db('payments')
        .where({ brand_id: key.brandId, gateway: key.gateway, status: 'succeeded' })
        .select('id', 'gateway_payment_id as gateway_id', 'gateway_payment_id', db.raw(`${collected} as amount_minor`), 'currency', 'created_at'),
    },
  ];
  for (const source of OPTIONAL_SOURCES) {
    if (!(await db.schema.hasTable(source.table))) continue;
    const columns = await db(source.table).columnInfo();
    const needed = ['id', 'brand_id', source.gatewayIdColumn, 'amount_minor', 'currency', 'created_at'];
    if (!needed.every((c) => c in columns)) continue;
    let query = db(source.table)
      .where({ brand_id: key.brandId })
      .select('id', `${source.gatewayIdColumn} as gateway_id`, 'amount_minor', 'currency', 'created_at')
      .select(db.raw(`${'gateway_payment_id' in columns ? 'gateway_payment_id' : 'null'} as gateway_payment_id`));
    if ('gateway' in columns) query = query.where({ gateway: key.gateway });
    // Only movements the gateway has carried out belong on its report.
    if ('status' in columns) query = query.whereNotIn('status', ['pending', 'failed', 'declined', 'canceled', 'cancelled']);
    sources.push({ type: source.type, gatewayIdColumn: source.gatewayIdColumn, query });
  }

  const records: OurRecord[] = [];
  for (const { type, gatewayIdColumn, query } of sources) {
    const ids = reportedIds[type];
    const rows: SourceRow[] = await query.where((q) => {
      q.whereRaw(`created_at >= ?::timestamptz and created_at < ?::timestamptz + interval '1 day'`, [start, start]);
      if (ids.length) q.orWhereIn(gatewayIdColumn, ids as string[]);
    });
    for (const r of rows) {
      // Payments are stored positive; on the report a refund or chargeback takes money back.
      const magnitude = Math.abs(Number(r.amount_minor));
      records.push({
        type,
        id: r.id,
        gatewayId: r.gateway_id,
        gatewayPaymentId: r.gateway_payment_id,
        amountMinor: type === 'payment' ? magnitude : -magnitude,
        currency: String(r.currency).trim(),
        occurredAt: new Date(r.created_at).toISOString(),
      });
    }
  }
  return records;
}

/** The report day on which another run of this brand and gateway found each of these records. */
export async function reportedOnOtherDays(db: Db, key: RunKey, runId: string, records: readonly OurRecord[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const type of ['payment', 'refund', 'chargeback'] as const) {
    const ids = records.filter((r) => r.type === type).map((r) => r.id);
    if (!ids.length) continue;
    const rows = await db('reconciliation_items as i')
      .join('reconciliation_runs as r', 'r.id', 'i.run_id')
      .where({ 'r.brand_id': key.brandId, 'r.gateway': key.gateway, 'i.our_record_type': type })
      .whereNot('r.id', runId)
      .whereIn('i.kind', ['matched', 'amount_mismatch'])
      .whereIn('i.our_record_id', ids)
      .orderBy('r.report_date')
      .select('i.our_record_id', db.raw('r.report_date::text as report_date'));
    for (const row of rows) if (!found.has(`${type}:${row.our_record_id}`)) found.set(`${type}:${row.our_record_id}`, row.report_date as string);
  }
  return found;
}

export interface PayoutTotals {
  gross: number;
  fees: number;
  net: number;
  lines: number;
}

export interface PayoutRecord {
  payoutId: string;
  currency: string;
  grossMinor: number;
  feesMinor: number;
  netMinor: number;
  /** What this run posted to the ledger: the whole payout, a correction, or nothing. */
  posted: 'payout' | 'adjustment' | 'none';
}

/**
 * Records the day's payout in one currency, net of fees, with its ledger transaction (DR cash
 * net, DR gateway fees, CR gateway clearing gross), idempotent by (brand, 'payout', payout id).
 * A re-run that finds other totals — a late line on the report — posts only the difference, as
 * 'payout_adjustment' for the payout's next version.
 */
async function recordPayout(trx: Knex.Transaction, key: RunKey, runId: string, currency: string, t: PayoutTotals): Promise<PayoutRecord> {
  const existing = await trx('payouts').where({ brand_id: key.brandId, gateway: key.gateway, report_date: key.reportDate, currency }).forUpdate().first();
  const view = (payoutId: string, posted: PayoutRecord['posted']): PayoutRecord => ({ payoutId, currency, grossMinor: t.gross, feesMinor: t.fees, netMinor: t.net, posted });
  if (!existing) {
    const payoutId = newId('po');
    await trx('payouts').insert({
      id: payoutId,
      brand_id: key.brandId,
      gateway: key.gateway,
      report_date: key.reportDate,
      currency,
      gross_minor: t.gross,
      fees_minor: t.fees,
      net_minor: t.net,
      line_count: t.lines,
      run_id: runId,
    });
    await postTransaction(trx, { brandId: key.brandId, customerId: null, kind: 'payout', documentId: payoutId, currency, entries: payoutEntries(t) });
    return view(payoutId, 'payout');
  }
  const payoutId = existing.id as string;
  const delta = { gross: t.gross - Number(existing.gross_minor), fees: t.fees - Number(existing.fees_minor), net: t.net - Number(existing.net_minor) };
  if (delta.gross === 0 && delta.fees === 0) {
    await trx('payouts').where({ id: payoutId }).update({ run_id: runId, line_count: t.lines });
    return view(payoutId, 'none');
  }
  const version = Number(existing.version) + 1;
  await trx('payouts')
    .where({ id: payoutId })
    .update({ gross_minor: t.gross, fees_minor: t.fees, net_minor: t.net, line_count: t.lines, run_id: runId, version, updated_at: trx.fn.now() });
  await postTransaction(trx, { brandId: key.brandId, customerId: null, kind: 'payout_adjustment', documentId: `${payoutId}:v${version}`, currency, entries: payoutEntries(delta) });
  return view(payoutId, 'adjustment');
}

export interface RunResult {
  items: readonly ReconciliationItem[];
  counts: ReconciliationCounts;
  payouts: Record<string, PayoutTotals>;
  /** Lines no brand claims: reported, not booked. */
  unclaimedLines: readonly SettlementLine[];
}

/** Writes the run's items, its payouts and its counts in one transaction; a re-run replaces the items. */
export async function completeRun(db: Db, runId: string, result: RunResult): Promise<{ payouts: PayoutRecord[] }> {
  return db.transaction(async (trx) => {
    await trx('reconciliation_runs').where({ id: runId }).forUpdate().first('id');
    const key = await runKey(trx, runId);
    if (!key) throw new Error(`reconciliation run ${runId} not found`);
    await trx('reconciliation_items').where({ run_id: runId }).delete();
    const rows = result.items.map((i) => ({
      run_id: runId,
      kind: i.kind,
      line_type: i.lineType,
      line_id: i.lineId,
      gateway_payment_id: i.gatewayPaymentId,
      our_record_type: i.ourRecordType,
      our_record_id: i.ourRecordId,
      our_gateway_id: i.ourGatewayId,
      report_amount_minor: i.reportAmountMinor,
      report_fee_minor: i.reportFeeMinor,
      our_amount_minor: i.ourAmountMinor,
      currency: i.currency,
      detail: JSON.stringify(i.detail),
    }));
    for (let i = 0; i < rows.length; i += 500) await trx('reconciliation_items').insert(rows.slice(i, i + 500));
    const payouts: PayoutRecord[] = [];
    for (const [currency, totals] of Object.entries(result.payouts).sort(([a], [b]) => a.localeCompare(b))) {
      payouts.push(await recordPayout(trx, key, runId, currency, totals));
    }
    const counts = { ...result.counts, unclaimedLines: result.unclaimedLines.length, payouts: payouts.map((p) => ({ currency: p.currency, grossMinor: p.grossMinor, feesMinor: p.feesMinor, netMinor: p.netMinor })) };
    await trx('reconciliation_runs').where({ id: runId }).update({ status: 'completed', finished_at: trx.fn.now(), counts: JSON.stringify(counts), error: null });
    return { payouts };
  });
}

/**
 * Closes every timing difference of the brand and gateway that some other day's run found on its
 * report (matched or with another amount), naming that run; recomputed from scratch each time,
 * so a re-run of any day leaves the resolutions right. Returns how many this run resolved and
 * how many stay open beyond the tolerance (those are mismatches now).
 */
export async function resolveTimingDifferences(db: Db, runId: string, toleranceDays: number): Promise<{ resolvedByThisRun: number; open: number; overdue: number }> {
  const key = await runKey(db, runId);
  if (!key) throw new Error(`reconciliation run ${runId} not found`);
  await db.raw(
    `update reconciliation_items t
        set resolved_by_run_id = (
          select m.run_id
            from reconciliation_items m
            join reconciliation_runs mr on mr.id = m.run_id
           where m.our_record_type = t.our_record_type
             and m.our_record_id = t.our_record_id
             and m.kind in ('matched', 'amount_mismatch')
             and m.run_id <> t.run_id
             and mr.brand_id = ? and mr.gateway = ?
           order by mr.report_date
           limit 1)
       from reconciliation_runs tr
      where tr.id = t.run_id and tr.brand_id = ? and tr.gateway = ? and t.kind = 'timing_difference'`,
    [key.brandId, key.gateway, key.brandId, key.gateway],
  );
  const scope = () =>
    db('reconciliation_items as t').join('reconciliation_runs as r', 'r.id', 't.run_id').where({ 'r.brand_id': key.brandId, 'r.gateway': key.gateway, 't.kind': 'timing_difference' });
  const [resolved] = await scope().where('t.resolved_by_run_id', runId).count({ n: '*' });
  const [open] = await scope().whereNull('t.resolved_by_run_id').count({ n: '*' });
  const [overdue] = await scope()
    .whereNull('t.resolved_by_run_id')
    .whereRaw(`r.report_date < ?::date - ?::int`, [key.reportDate, toleranceDays])
    .count({ n: '*' });
  return { resolvedByThisRun: Number(resolved?.n ?? 0), open: Number(open?.n ?? 0), overdue: Number(overdue?.n ?? 0) };
}

export async function operatorEmail(db: Db, brandId: string): Promise<string> {
  const brand = await db('brands').where({ id: brandId }).first('settings');
  const email = brand?.settings?.operatorEmail;
  return typeof email === 'string' && email.trim() ? email.trim() : DEFAULT_OPERATOR_EMAIL;
}

/** The brand's runs, newest report day first. */
export async function listRuns(db: Db, brandId: string, limit: number) {
  return db('reconciliation_runs')
    .where({ brand_id: brandId })
    .orderBy('report_date', 'desc')
    .orderBy('gateway')
    .limit(limit)
    .select('id', 'gateway', db.raw('report_date::text as report_date'), 'status', 'started_at', 'finished_at', 'counts', 'error');
}

export async function getRun(db: Db, brandId: string, runId: string) {
  const run = await db('reconciliation_runs')
    .where({ brand_id: brandId, id: runId })
    .first('id', 'gateway', db.raw('report_date::text as report_date'), 'status', 'started_at', 'finished_at', 'counts', 'error');
  if (!run) return undefined;
  const [items, payouts] = await Promise.all([
    db('reconciliation_items').where({ run_id: runId }).orderBy('id'),
    db('payouts').where({ brand_id: brandId, gateway: run.gateway, report_date: run.report_date }).orderBy('currency'),
  ]);
  return { run, items, payouts };
}
