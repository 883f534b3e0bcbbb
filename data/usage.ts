/**
 * Metered usage in PostgreSQL: idempotent batch ingest (one statement per batch, first write of
 * an event id wins) and the pure rules around it — exact quantities, the accepted time window,
 * and when a batch crosses 80 % or 100 % of a metric's included allowance.
 */
import type { Knex } from 'knex';
import type { UsageComponent } from '../domain/catalog';
import type { Db } from '../infra/db';

/** The most events one request may carry. */
export const MAX_EVENTS_PER_BATCH = 10_000;
/** Client-chosen event ids: the idempotency key of an event within its customer. */
export const USAGE_EVENT_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
/** Quantities carry at most this many decimals (the column holds 12, so they are stored exactly). */
export const QUANTITY_DECIMALS = 6;
/** Whole-number digits of a quantity: every quantity is below 10^15. */
export const QUANTITY_WHOLE_DIGITS = 15;
export const MAX_PROPERTIES = 20;

/**
 * The accepted window for `timestamp`. A little future skew is tolerated for clients whose clocks
 * run ahead; 35 days covers a monthly period plus a few days of late delivery, so a late event
 * still reaches the next invoice as an adjustment. Older events are refused rather than silently
 * billed against a period that has long been closed.
 */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
export const MAX_EVENT_AGE_MS = 35 * 86_400_000;

/** Usage is recorded only while the customer is billable; a suspended customer's usage is refused too. */
export const USAGE_ACCEPTING_STAGES: ReadonlySet<string> = new Set(['active', 'past_due']);

/** Percentages of an included allowance at which the customer workflow is told. */
export const USAGE_THRESHOLDS = [80, 100] as const;
export type UsageThreshold = (typeof USAGE_THRESHOLDS)[number];

export type QuantityResult = { ok: true; value: string } | { ok: false; message: string };

const DECIMAL_TEXT = /^-?\d+(\.\d+)?$/;

/**
 * A quantity as sent (a JSON number or a decimal string) as an exact decimal string, never via
 * arithmetic on floats: a number is taken as its shortest round-trip text (`String(n)`), and one
 * that needs an exponent there is refused rather than guessed at.
 */
export function parseQuantity(input: unknown): QuantityResult {
  let text: string;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) return { ok: false, message: 'must be a finite number' };
    text = String(input);
    if (/e/i.test(text)) return { ok: false, message: `${text} needs an exponent; send it as a decimal string` };
  } else if (typeof input === 'string') {
    text = input;
  } else {
    return { ok: false, message: 'must be a number or a decimal string such as "0.000125"' };
  }
  if (!DECIMAL_TEXT.test(text)) return { ok: false, message: 'must be a decimal such as "12" or "0.000125"' };
  if (text.startsWith('-')) {
    return /^-0+(\.0+)?$/.test(text) ? { ok: true, value: '0' } : { ok: false, message: 'must not be negative' };
  }
  const [whole = '', fraction = ''] = text.split('.');
  if (fraction.length > QUANTITY_DECIMALS) return { ok: false, message: `at most ${QUANTITY_DECIMALS} decimal places` };
  const significant = whole.replace(/^0+(?=\d)/, '');
  if (significant.length > QUANTITY_WHOLE_DIGITS) return { ok: false, message: `must be less than 1e${QUANTITY_WHOLE_DIGITS}` };
  return { ok: true, value: fraction ? `${significant}.${fraction}` : significant };
}

/** Why a timestamp is outside the accepted window, or undefined when it is inside. */
export function timestampProblem(occurredAtMs: number, nowMs: number): string | undefined {
  if (occurredAtMs > nowMs + MAX_FUTURE_SKEW_MS) return `more than ${MAX_FUTURE_SKEW_MS / 60_000} minutes in the future`;
  if (occurredAtMs < nowMs - MAX_EVENT_AGE_MS) return `older than ${MAX_EVENT_AGE_MS / 86_400_000} days`;
  return undefined;
}

const SCALE = 12;

/** A non-negative decimal string as an integer count of 10^-12 units (the column's scale). */
function scaled(decimal: string): bigint {
  const [whole = '0', fraction = ''] = decimal.split('.');
  if (fraction.length > SCALE) throw new RangeError(`"${decimal}" has more than ${SCALE} decimals`);
  return BigInt(whole || '0') * 10n ** BigInt(SCALE) + BigInt(fraction.padEnd(SCALE, '0') || '0');
}

/** "85.000000000000" → "85", "0.000100" → "0.0001": how quantities appear on the wire. */
export function normalizeDecimal(decimal: string): string {
  const [whole = '0', fraction = ''] = decimal.split('.');
  const w = whole.replace(/^0+(?=\d)/, '') || '0';
  const f = fraction.replace(/0+$/, '');
  return f ? `${w}.${f}` : w;
}

export interface ThresholdCrossing {
  metric: string;
  threshold: UsageThreshold;
  /** The unbilled total after the batch. */
  quantity: string;
  included: string;
}

/**
 * The thresholds of an allowance that a batch crossed: reached now (`after ≥ t % of included`)
 * and not reached before. Exact decimal comparison; an allowance of 0 has no thresholds. A batch
 * that jumps over both reports both.
 */
export function thresholdCrossings(input: { metric: string; included: number | string; before: string; after: string }): ThresholdCrossing[] {
  const included = scaled(String(input.included));
  if (included <= 0n) return [];
  const before = scaled(input.before) * 100n;
  const after = scaled(input.after) * 100n;
  return USAGE_THRESHOLDS.filter((t) => {
    const level = included * BigInt(t);
    return before < level && after >= level;
  }).map((threshold) => ({
    metric: input.metric,
    threshold,
    quantity: normalizeDecimal(input.after),
    included: normalizeDecimal(String(input.included)),
  }));
}

/** `a + b` for non-negative decimal strings, exactly. */
export function addDecimals(a: string, b: string): string {
  const sum = scaled(a) + scaled(b);
  const unit = 10n ** BigInt(SCALE);
  return normalizeDecimal(`${sum / unit}.${(sum % unit).toString().padStart(SCALE, '0')}`);
}

/** What ingest needs to know about a customer: their stage and the plan version they are on. */
export interface UsageCustomer {
  stage: string;
  plan: { code: string; version: number; usageComponents: UsageComponent[] } | null;
}

/**
 * The customer's stage and the plan version of their active subscription (the newest, should a
 * plan change have left two briefly active), or undefined when the brand has no such customer.
 */
export async function findUsageCustomer(db: Db, brandId: string, customerId: string): Promise<UsageCustomer | undefined> {
  const { rows } = await db.raw<{
    rows: Array<{ stage: string; code: string | null; version: number | null; usage_components: UsageComponent[] | null }>;
  }>(
    `SELECT c.stage, p.code, p.version, p.usage_components
       FROM customers c
       LEFT JOIN LATERAL (
         SELECT s.plan_code, s.plan_version FROM subscriptions s
          WHERE s.brand_id = c.brand_id AND s.customer_id = c.id AND s.status = 'active'
          ORDER BY s.created_at DESC LIMIT 1
       ) s ON true
       LEFT JOIN plans p ON p.brand_id = c.brand_id AND p.code = s.plan_code AND p.version = s.plan_version
      WHERE c.brand_id = ? AND c.id = ?`,
    [brandId, customerId],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    stage: row.stage,
    plan: row.code !== null && row.version !== null ? { code: row.code, version: row.version, usageComponents: row.usage_components ?? [] } : null,
  };
}

export interface UsageEventInput {
  id: string;
  metric: string;
  /** An exact decimal string (see parseQuantity). */
  quantity: string;
  /** ISO-8601 with a zone; PostgreSQL parses it, keeping microseconds. */
  timestamp: string;
  properties?: Record<string, string | number | boolean>;
}

export interface MetricTotals {
  metric: string;
  /** Events of this metric newly stored by the batch. */
  inserted: number;
  added: string;
  /** Unbilled total before and after the batch; only for the metrics asked about. */
  before?: string;
  after?: string;
}

export interface RecordedUsage {
  accepted: number;
  metrics: MetricTotals[];
}

/**
 * Stores a batch of events (ids unique within the batch) in one statement: rows travel as one
 * jsonb parameter, so the statement has five parameters whatever the batch size and never nears
 * PostgreSQL's 65,535-parameter limit. An id already stored for the customer is skipped, even
 * with another quantity: the first write wins, so a retried batch never counts twice.
 *
 * For the metrics in `totalsFor` (those with an allowance) the same statement also reads the
 * customer's unbilled total as it was before the batch: the statement's snapshot does not see its
 * own inserts. Those batches run in a transaction holding a per-customer advisory lock, so the
 * snapshot includes every batch committed before and two concurrent batches cannot both miss a
 * threshold between them. Batches without such metrics are the single statement alone.
 */
export async function recordUsage(
  db: Db,
  input: { brandId: string; customerId: string; events: UsageEventInput[]; totalsFor: string[] },
): Promise<RecordedUsage> {
  const { brandId, customerId, events, totalsFor } = input;
  if (events.length === 0) return { accepted: 0, metrics: [] };
  const rows = JSON.stringify(
    events.map((e) => ({ id: e.id, metric: e.metric, quantity: e.quantity, occurred_at: e.timestamp, properties: e.properties ?? {} })),
  );
  const insert = async (q: Db | Knex.Transaction) =>
    (
      await q.raw<{ rows: Array<{ metric: string; inserted: number; added: string; before: string | null }> }>(
        `WITH ins AS (
           INSERT INTO usage_events (brand_id, customer_id, event_id, metric, quantity, occurred_at, properties)
           SELECT ?, ?, e.id, e.metric, e.quantity, e.occurred_at, e.properties
             FROM jsonb_to_recordset(?::jsonb) AS e(id text, metric text, quantity numeric, occurred_at timestamptz, properties jsonb)
           ON CONFLICT (brand_id, customer_id, event_id) DO NOTHING
           RETURNING metric, quantity
         )
         SELECT ins.metric, count(*)::int AS inserted, sum(ins.quantity)::text AS added,
                CASE WHEN ins.metric IN (SELECT jsonb_array_elements_text(?::jsonb)) THEN (
                  SELECT coalesce(sum(u.quantity), 0) FROM usage_events u
                   WHERE u.brand_id = ? AND u.customer_id = ? AND u.metric = ins.metric AND u.invoice_id IS NULL
                )::text END AS before
           FROM ins
          GROUP BY ins.metric`,
        [brandId, customerId, rows, JSON.stringify(totalsFor), brandId, customerId],
      )
    ).rows;

  const result =
    totalsFor.length === 0
      ? await insert(db)
      : await db.transaction(async (trx) => {
          await trx.raw('SELECT pg_advisory_xact_lock(hashtextextended(?, 0))', [`usage:${brandId}:${customerId}`]);
          return insert(trx);
        });
  const metrics = result.map((r) => ({
    metric: r.metric,
    inserted: r.inserted,
    added: normalizeDecimal(r.added),
    ...(r.before !== null ? { before: normalizeDecimal(r.before), after: addDecimals(r.before, r.added) } : {}),
  }));
  return { accepted: metrics.reduce((n, m) => n + m.inserted, 0), metrics };
}
