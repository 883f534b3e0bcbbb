/**
 * Leads and the revenue attributed back to them, in PostgreSQL: idempotent capture, the lead's
 * outcome (converted or expired, once), and the acquisition funnel by source and campaign.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../infra/db';
import { conversionRate, FunnelRevenue, FunnelRow } from '../domain/acquisition';
import { CURRENCY_CODE } from '../domain/money';

export type LeadStatus = 'open' | 'converted' | 'expired';
export type LeadAttributes = Record<string, string | number | boolean>;

export interface Lead {
  brandId: string;
  /** Also the id of the customer the lead becomes (and of its customer workflow). */
  id: string;
  externalId: string | null;
  email: string;
  name: string | null;
  source: string;
  campaign: string | null;
  attributes: LeadAttributes;
  status: LeadStatus;
  createdAt: string;
  convertedAt: string | null;
  expiredAt: string | null;
}

export interface CaptureLeadInput {
  /** The client's own id for the lead; a repeat with the same one is the same lead. */
  externalId?: string;
  /** The request's Idempotency-Key; the dedupe key when there is no externalId. */
  idempotencyKey?: string;
  email: string;
  name?: string;
  source: string;
  campaign?: string;
  attributes?: LeadAttributes;
}

export type LeadField = 'externalId' | 'idempotencyKey' | 'email' | 'name' | 'source' | 'campaign' | 'attributes';

/** A repeat of a capture whose key is taken by a lead with different details. */
export class LeadConflictError extends Error {
  constructor(
    readonly leadId: string,
    readonly fields: LeadField[],
  ) {
    super(`lead "${leadId}" already exists with a different ${fields.join(' and ')}`);
    this.name = 'LeadConflictError';
  }
}

interface LeadRow {
  brand_id: string;
  id: string;
  external_id: string | null;
  idempotency_key: string | null;
  email: string;
  name: string | null;
  source: string;
  campaign: string;
  attributes: LeadAttributes;
  status: LeadStatus;
  created_at: Date;
  converted_at: Date | null;
  expired_at: Date | null;
}

function leadFromRow(r: LeadRow): Lead {
  return {
    brandId: r.brand_id,
    id: r.id,
    externalId: r.external_id,
    email: r.email,
    name: r.name,
    source: r.source,
    // The column is NOT NULL with '' for "no campaign"; the API says null.
    campaign: r.campaign === '' ? null : r.campaign,
    attributes: r.attributes,
    status: r.status,
    createdAt: r.created_at.toISOString(),
    convertedAt: r.converted_at?.toISOString() ?? null,
    expiredAt: r.expired_at?.toISOString() ?? null,
  };
}

/**
 * `lead_` + 20 lower-case hex characters (80 random bits): a valid customer id (domain/ids.ts)
 * that says where the customer came from and never collides with a client-chosen id by accident.
 */
export function newLeadId(): string {
  return `lead_${crypto.randomBytes(10).toString('hex')}`;
}

function sameAttributes(a: LeadAttributes, b: LeadAttributes): boolean {
  const ak = Object.keys(a);
  return ak.length === Object.keys(b).length && ak.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}

/** The fields of a repeated capture that differ from the stored lead; omitted optional ones never do. */
function differences(row: LeadRow, input: CaptureLeadInput): LeadField[] {
  const out: LeadField[] = [];
  if (input.externalId === undefined && row.external_id !== null) out.push('externalId');
  if (input.email !== row.email) out.push('email');
  if (input.name !== undefined && input.name !== row.name) out.push('name');
  if (input.source !== row.source) out.push('source');
  if ((input.campaign ?? '') !== row.campaign) out.push('campaign');
  if (input.attributes !== undefined && !sameAttributes(input.attributes, row.attributes)) out.push('attributes');
  return out;
}

/**
 * Inserts a lead once per key: by `externalId` when given, else by `idempotencyKey`, else a new
 * lead every time. A repeat returns the stored lead (`created: false`); a repeat whose details
 * differ throws LeadConflictError and changes nothing.
 *
 * INSERT … ON CONFLICT DO NOTHING and then SELECT: a concurrent capture with the same key waits
 * for the other to commit and then reads its row, so two racing requests get one lead.
 */
export async function captureLead(db: Db, brandId: string, input: CaptureLeadInput): Promise<{ lead: Lead; created: boolean }> {
  return db.transaction(async (trx) => {
    // More than one round only if a fresh random id collides with an existing one.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const inserted: LeadRow[] = await trx('leads')
        .insert({
          brand_id: brandId,
          id: newLeadId(),
          external_id: input.externalId ?? null,
          idempotency_key: input.idempotencyKey ?? null,
          email: input.email,
          name: input.name ?? null,
          source: input.source,
          campaign: input.campaign ?? '',
          attributes: JSON.stringify(input.attributes ?? {}),
        })
        .onConflict()
        .ignore()
        .returning('*');
      if (inserted[0]) return { lead: leadFromRow(inserted[0]), created: true };

      const existing = await findByKey(trx, brandId, input);
      if (existing) {
        const fields = differences(existing, input);
        if (fields.length > 0) throw new LeadConflictError(existing.id, fields);
        return { lead: leadFromRow(existing), created: false };
      }
      if (input.externalId !== undefined && input.idempotencyKey !== undefined) {
        const holder = await trx<LeadRow>('leads').where({ brand_id: brandId, idempotency_key: input.idempotencyKey }).first();
        // The key was already used to capture a lead with another externalId.
        if (holder) throw new LeadConflictError(holder.id, ['idempotencyKey']);
      }
    }
    throw new Error('could not allocate a lead id');
  });
}

async function findByKey(trx: Knex.Transaction, brandId: string, input: CaptureLeadInput): Promise<LeadRow | undefined> {
  if (input.externalId !== undefined) {
    return trx<LeadRow>('leads').where({ brand_id: brandId, external_id: input.externalId }).first();
  }
  if (input.idempotencyKey !== undefined) {
    return trx<LeadRow>('leads').where({ brand_id: brandId, idempotency_key: input.idempotencyKey }).first();
  }
  return undefined;
}

export async function getLead(db: Db, brandId: string, id: string): Promise<Lead | undefined> {
  const row = await db<LeadRow>('leads').where({ brand_id: brandId, id }).first();
  return row ? leadFromRow(row) : undefined;
}

/**
 * Removes a lead captured by a request that then failed to start its customer workflow. Only
 * for leads captured without a key: nobody else can know their id, and the client cannot
 * retry them into the same lead, so leaving the row would count a phantom lead in the funnel.
 */
export async function discardUnstartedLead(db: Db, brandId: string, id: string): Promise<void> {
  await db('leads').where({ brand_id: brandId, id, status: 'open' }).whereNull('external_id').whereNull('idempotency_key').delete();
}

/**
 * A lead's outcome is written once: only an open lead converts or expires, so a retried
 * activity changes nothing and a converted lead never goes back. Returns whether it changed.
 */
export async function markLeadConverted(db: Db, brandId: string, id: string, at: Date): Promise<boolean> {
  const n = await db('leads').where({ brand_id: brandId, id, status: 'open' }).update({ status: 'converted', converted_at: at });
  return n > 0;
}

export async function markLeadExpired(db: Db, brandId: string, id: string, at: Date): Promise<boolean> {
  const n = await db('leads').where({ brand_id: brandId, id, status: 'open' }).update({ status: 'expired', expired_at: at });
  return n > 0;
}

export interface AttributedRevenue {
  brandId: string;
  customerId: string;
  /** What the money is, e.g. `payment:<id>` or `refund:<id>`: one row per money event. */
  sourceEvent: string;
  /** Integer minor units; negative for money going back (refunds). */
  amountMinor: bigint | number;
  currency: string;
}

/** Records revenue once per source event; a replay of the same event is ignored. */
export async function recordAttributedRevenue(db: Db, r: AttributedRevenue): Promise<{ recorded: boolean }> {
  if (typeof r.amountMinor === 'number' && !Number.isSafeInteger(r.amountMinor)) {
    throw new RangeError(`amountMinor must be an integer number of minor units, got ${r.amountMinor}`);
  }
  if (!CURRENCY_CODE.test(r.currency)) throw new RangeError(`not an ISO 4217 currency code: "${r.currency}"`);
  if (!r.sourceEvent) throw new RangeError('sourceEvent is required');
  const inserted = await db('attributed_revenue')
    .insert({
      brand_id: r.brandId,
      customer_id: r.customerId,
      source_event: r.sourceEvent,
      amount_minor: r.amountMinor.toString(),
      currency: r.currency,
    })
    .onConflict(['brand_id', 'source_event'])
    .ignore()
    .returning('id');
  return { recorded: inserted.length > 0 };
}

/** Leads captured at or after `from` and strictly before `before` (either bound optional). */
export interface FunnelWindow {
  from?: Date;
  before?: Date;
}

interface FunnelDbRow {
  source: string;
  campaign: string;
  leads: number;
  conversions: number;
  expired: number;
  open: number;
  revenue: Array<{ currency: string; minor: string }>;
}

/**
 * The funnel of a brand's leads captured in the window, by source and campaign: how many,
 * their outcome so far, and the revenue attributed to them to date (per currency, in minor
 * units). A cohort view: revenue counts however late it arrives, for leads captured in the
 * window. Customers who signed up without a lead are not part of it. One query.
 */
export async function acquisitionFunnel(db: Db, brandId: string, window: FunnelWindow = {}): Promise<FunnelRow[]> {
  const conditions = ['brand_id = ?'];
  const bindings: unknown[] = [brandId];
  if (window.from) {
    conditions.push('created_at >= ?');
    bindings.push(window.from);
  }
  if (window.before) {
    conditions.push('created_at < ?');
    bindings.push(window.before);
  }
  const result = await db.raw<{ rows: FunnelDbRow[] }>(
    `
    WITH cohort AS (
      SELECT brand_id, id, source, campaign, status FROM leads WHERE ${conditions.join(' AND ')}
    ),
    counts AS (
      SELECT source, campaign,
             count(*)::int AS leads,
             (count(*) FILTER (WHERE status = 'converted'))::int AS conversions,
             (count(*) FILTER (WHERE status = 'expired'))::int AS expired,
             (count(*) FILTER (WHERE status = 'open'))::int AS open
        FROM cohort
       GROUP BY source, campaign
    ),
    revenue AS (
      SELECT c.source, c.campaign, r.currency, sum(r.amount_minor)::text AS minor
        FROM cohort c
        JOIN attributed_revenue r ON r.brand_id = c.brand_id AND r.customer_id = c.id
       GROUP BY c.source, c.campaign, r.currency
    )
    SELECT n.source, n.campaign, n.leads, n.conversions, n.expired, n.open,
           coalesce(
             json_agg(json_build_object('currency', v.currency, 'minor', v.minor) ORDER BY v.currency)
               FILTER (WHERE v.currency IS NOT NULL),
             '[]'::json
           ) AS revenue
      FROM counts n
      LEFT JOIN revenue v ON v.source = n.source AND v.campaign = n.campaign
     GROUP BY n.source, n.campaign, n.leads, n.conversions, n.expired, n.open
     ORDER BY n.source, n.campaign
    `,
    bindings as Knex.RawBinding[],
  );
  return result.rows.map((r) => ({
    source: r.source,
    campaign: r.campaign === '' ? null : r.campaign,
    leads: r.leads,
    conversions: r.conversions,
    expired: r.expired,
    open: r.open,
    conversionRate: conversionRate(r.conversions, r.leads),
    revenue: r.revenue.map((v): FunnelRevenue => ({ currency: v.currency, minor: BigInt(v.minor) })),
  }));
}
