/**
 * Finalizing invoices. One database transaction does all of it: claim the customer's unbilled
 * usage, rate it, compute the invoice, take the next gapless number, write the invoice, its
 * lines and its ledger transaction. Idempotent by (brand, customer, billing key): a retried
 * finalize returns the invoice it already made and never bills usage twice.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { UsageComponent } from '../domain/catalog';
import { Decimal } from '../domain/decimal';
import { DraftLine, invoiceLedgerEntries, invoiceNumber, invoiceTotals, numberLines, TaxRule } from '../domain/invoice';
import type { InvoiceDocument, InvoiceLineDocument } from '../domain/invoice-document';
import { roundToMinor } from '../domain/money';
import { discountedFeeMinor } from '../domain/offers';
import { addDuration, billingPeriod, BillingPeriod, parseIsoDuration } from '../domain/period';
import { rateUsage, RatedUsage } from '../domain/rating';
import type { Db } from '../infra/db';
import { faultPoint } from '../infra/fault-injection';
import type { Subscription } from '../workflows/shared';
import { recordAttributedRevenue } from './leads';
import { customerCreditMinor, postTransaction } from './ledger';
import { planVersion } from './plans';

/** What billing reads of the customer's subscription (the workflow passes its own). */
export type BilledSubscription = Pick<
  Subscription,
  'planCode' | 'planVersion' | 'planName' | 'currency' | 'listPriceMinor' | 'discountPercent' | 'discountPeriods' | 'billingPeriod' | 'startedAt'
>;

export interface FinalizeInvoiceInput {
  brandId: string;
  customerId: string;
  /** What this invoice bills, unique per customer: "opening", "period:3", "plan-change:<id>", "final". */
  billingKey: string;
  kind: 'opening' | 'period' | 'proration' | 'final';
  /** Usage is rated at this subscription's plan (the plan it was used under). */
  subscription: BilledSubscription;
  /** The advance fee is billed at this one when a change takes effect with the new period; default `subscription`. */
  advanceSubscription?: BilledSubscription;
  /** Lines computed by the workflow (proration), billed as given. */
  extraLines?: DraftLine[];
  /** Usage up to this period's end is billed in arrears; null on the opening invoice. */
  closingPeriod: BillingPeriod | null;
  /** The recurring fee is billed in advance for this period; null on a final invoice. */
  advancePeriod: BillingPeriod | null;
  issuedAt: string;
}

const DEFAULT_PAYMENT_TERMS = 'P14D';

async function taxRule(trx: Knex.Transaction, brandId: string): Promise<TaxRule & { name: string }> {
  const row = await trx('tax_rates').where({ brand_id: brandId, country: '*' }).first();
  if (!row) return { rate: '0', inclusive: false, name: 'Tax' };
  return { rate: String(row.rate).replace(/\.?0+$/, '') || '0', inclusive: row.inclusive, name: row.name };
}

/**
 * The period a late event belongs to. Usage from before the subscription started (reported while
 * the activation was still going on, say) belongs to the first period: see `usageFrom`.
 */
function periodOf(sub: BilledSubscription, at: Date, near: BillingPeriod): BillingPeriod {
  // Late events are at most weeks old: walk back from the closing period.
  for (let n = near.number; n >= 2; n -= 1) {
    const p = billingPeriod(sub.startedAt, sub.billingPeriod, n);
    if (Date.parse(p.start) <= at.getTime()) return p;
  }
  return billingPeriod(sub.startedAt, sub.billingPeriod, 1);
}

/** Where a period's usage starts: the first period also takes what came before the subscription began. */
const usageFrom = (p: BillingPeriod): string | null => (p.number <= 1 ? null : p.start);

function usageLine(
  kind: 'usage' | 'usage_adjustment',
  rated: RatedUsage,
  exact: string,
  period: BillingPeriod,
  description: string,
  currency: string,
): DraftLine {
  return {
    kind,
    description,
    metric: rated.metric,
    quantity: rated.quantity,
    unitPrice: rated.unitPrice,
    // The one rounding of this line.
    amountMinor: Number(roundToMinor(exact, currency).minor),
    periodStart: period.start,
    periodEnd: period.end,
    detail: { model: rated.model, includedQuantity: rated.includedQuantity, billableQuantity: rated.billableQuantity, breakdown: rated.breakdown, adjustments: rated.adjustments, amountExact: exact },
  };
}

/**
 * The brand's next invoice number, taken in the caller's transaction: the counter row is locked
 * until it commits, and a rollback gives the number back, so numbers never skip.
 */
export async function nextInvoiceNumber(trx: Knex.Transaction, brandId: string): Promise<number> {
  const [{ last_number: number }] = await trx('invoice_counters')
    .insert({ brand_id: brandId, last_number: 1 })
    .onConflict('brand_id')
    .merge({ last_number: trx.raw('invoice_counters.last_number + 1') })
    .returning('last_number');
  return Number(number);
}

export async function finalizeInvoice(db: Db, input: FinalizeInvoiceInput): Promise<{ invoiceId: string; created: boolean }> {
  return db.transaction(async (trx) => {
    const existing = await trx('invoices').where({ brand_id: input.brandId, customer_id: input.customerId, billing_key: input.billingKey }).first('id');
    if (existing) return { invoiceId: existing.id as string, created: false };

    const sub = input.subscription;
    const currency = sub.currency;
    const invoiceId = `inv_${crypto.randomUUID().replace(/-/g, '')}`;
    const lines: DraftLine[] = [];

    if (input.closingPeriod) {
      const plan = await planVersion(trx as unknown as Db, input.brandId, sub.planCode, sub.planVersion);
      const components: UsageComponent[] = plan?.usageComponents ?? [];
      const closing = input.closingPeriod;
      // Claim every unbilled event up to the period's end, in this transaction: a concurrent or
      // retried close cannot bill them again, and a late event is never lost.
      await trx('usage_events')
        .where({ brand_id: input.brandId, customer_id: input.customerId })
        .whereNull('invoice_id')
        .where('occurred_at', '<', closing.end)
        .update({ invoice_id: invoiceId });
      // By the customer too: usage_events is indexed by (brand_id, customer_id, event_id) and not by
      // invoice_id, so `invoice_id` alone read the whole table, twice per finalize.
      const claimed = { brand_id: input.brandId, customer_id: input.customerId, invoice_id: invoiceId };
      const closingFrom = usageFrom(closing);
      const inPeriod = new Map<string, string>(
        (await trx('usage_events')
          .where(claimed)
          .modify((q) => (closingFrom ? q.where('occurred_at', '>=', closingFrom) : q))
          .groupBy('metric')
          .select('metric', trx.raw('sum(quantity)::text as quantity'))).map((r: { metric: string; quantity: string }) => [r.metric, r.quantity]),
      );
      for (const component of components) {
        const rated = rateUsage(component, inPeriod.get(component.metric) ?? '0', currency);
        lines.push(usageLine('usage', rated, rated.amountExact, closing, `${component.metric} usage`, currency));
      }
      // Late events of earlier periods: re-rate each such period with them and bill the
      // difference, so tiers and allowances come out as if they had arrived on time.
      const lateRows: Array<{ metric: string; occurred_at: Date }> = closingFrom
        ? await trx('usage_events').where(claimed).where('occurred_at', '<', closingFrom).select('metric', 'occurred_at')
        : [];
      const late = new Map<string, { period: BillingPeriod; metric: string }>();
      for (const row of lateRows) {
        const period = periodOf(sub, row.occurred_at, closing);
        late.set(`${period.number}:${row.metric}`, { period, metric: row.metric });
      }
      for (const { period, metric } of late.values()) {
        const component = components.find((c) => c.metric === metric);
        if (!component) continue;
        const from = usageFrom(period);
        const sums = await trx('usage_events')
          .where({ brand_id: input.brandId, customer_id: input.customerId, metric })
          .modify((q) => (from ? q.where('occurred_at', '>=', from) : q))
          .where('occurred_at', '<', period.end)
          .whereNotNull('invoice_id')
          .select(
            trx.raw('coalesce(sum(quantity) filter (where invoice_id <> ?), 0)::text as before', [invoiceId]),
            trx.raw('coalesce(sum(quantity), 0)::text as after'),
          )
          .first();
        const before = rateUsage(component, sums.before, currency);
        const after = rateUsage(component, sums.after, currency);
        const diff = Decimal.parse(after.amountExact).sub(Decimal.parse(before.amountExact)).toString();
        const lateQuantity = Decimal.parse(sums.after).sub(Decimal.parse(sums.before)).toString();
        lines.push(
          usageLine('usage_adjustment', { ...after, quantity: lateQuantity }, diff, period, `${metric} usage reported late for period ${period.number}`, currency),
        );
      }
    }

    lines.push(...(input.extraLines ?? []));

    if (input.advancePeriod) {
      const p = input.advancePeriod;
      const sub = input.advanceSubscription ?? input.subscription;
      lines.push({
        kind: 'recurring',
        description: `${sub.planName} (${sub.billingPeriod}), period ${p.number}`,
        metric: null,
        quantity: '1',
        unitPrice: null,
        amountMinor: sub.listPriceMinor,
        periodStart: p.start,
        periodEnd: p.end,
        detail: { planCode: sub.planCode, planVersion: sub.planVersion },
      });
      const discounted = sub.discountPeriods === null || p.number <= sub.discountPeriods;
      if (sub.discountPercent > 0 && discounted) {
        const reduction = sub.listPriceMinor - discountedFeeMinor(sub.listPriceMinor, sub.discountPercent);
        if (reduction > 0) {
          lines.push({
            kind: 'discount',
            description: `${sub.discountPercent} % off${sub.discountPeriods ? ` (periods 1–${sub.discountPeriods})` : ''}`,
            metric: null,
            quantity: null,
            unitPrice: null,
            amountMinor: -reduction,
            periodStart: p.start,
            periodEnd: p.end,
            detail: { percent: sub.discountPercent, periods: sub.discountPeriods },
          });
        }
      }
    }

    const tax = await taxRule(trx, input.brandId);
    const credit = await customerCreditMinor(trx, input.brandId, input.customerId, currency);
    const totals = invoiceTotals(lines, tax, credit);
    const brand = await trx('brands').where({ id: input.brandId }).first('settings');
    const terms = (brand?.settings?.paymentTerms as string | undefined) ?? DEFAULT_PAYMENT_TERMS;
    const issuedAt = new Date(input.issuedAt);
    // Revenue recognised on this invoice (net of tax) feeds the acquisition funnel's revenue.
    await recordAttributedRevenue(trx as unknown as Db, {
      brandId: input.brandId,
      customerId: input.customerId,
      sourceEvent: `invoice:${invoiceId}`,
      amountMinor: totals.totalMinor - totals.taxMinor,
      currency,
    });
    await postTransaction(trx, {
      brandId: input.brandId,
      customerId: input.customerId,
      kind: 'invoice',
      documentId: invoiceId,
      currency,
      entries: invoiceLedgerEntries(totals),
    });
    // The number last: the brand's counter row stays locked from here until the commit, and every
    // finalize of the brand waits for it, so only the invoice and its lines are written under it.
    const number = await nextInvoiceNumber(trx, input.brandId);
    faultPoint('during-invoice-finalize'); // test-only crash point (CLOSELOOP_FAULT): usage claimed, number taken, nothing committed
    await trx('invoices').insert({
      id: invoiceId,
      brand_id: input.brandId,
      customer_id: input.customerId,
      number: Number(number),
      billing_key: input.billingKey,
      kind: input.kind,
      status: 'finalized',
      currency,
      period_number: input.closingPeriod?.number ?? input.advancePeriod?.number ?? null,
      period_start: input.closingPeriod?.start ?? input.advancePeriod?.start ?? null,
      period_end: input.closingPeriod?.end ?? input.advancePeriod?.end ?? null,
      subtotal_minor: totals.subtotalMinor,
      discount_minor: totals.discountMinor,
      tax_minor: totals.taxMinor,
      tax_rate: tax.rate,
      tax_inclusive: tax.inclusive,
      credit_applied_minor: totals.creditAppliedMinor,
      total_minor: totals.totalMinor,
      amount_due_minor: totals.amountDueMinor,
      issued_at: issuedAt,
      due_at: addDuration(issuedAt, parseIsoDuration(terms)),
    });
    const numbered = numberLines(lines);
    if (numbered.length > 0) {
      await trx('invoice_lines').insert(
        numbered.map((l) => ({
          invoice_id: invoiceId,
          position: l.position,
          kind: l.kind,
          description: l.description,
          metric: l.metric,
          quantity: l.quantity,
          unit_price: l.unitPrice,
          amount_exact: (l.detail.amountExact as string | undefined) ?? null,
          amount_minor: l.amountMinor,
          period_start: l.periodStart,
          period_end: l.periodEnd,
          detail: JSON.stringify(l.detail),
        })),
      );
    }
    return { invoiceId, created: true };
  });
}

const iso = (d: Date | null | undefined) => (d ? new Date(d).toISOString() : null);

/** The presentment shape of an invoice, or undefined when the brand has no such invoice. */
export async function loadInvoiceDocument(db: Db, brandId: string, invoiceId: string): Promise<InvoiceDocument | undefined> {
  const inv = await db('invoices').where({ id: invoiceId, brand_id: brandId }).first();
  if (!inv) return undefined;
  const [brand, customer, lines] = await Promise.all([
    db('brands').where({ id: brandId }).first('id', 'name', 'settings'),
    db('customers').where({ brand_id: brandId, id: inv.customer_id }).first('id', 'name', 'email'),
    db('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position'),
  ]);
  return {
    id: inv.id,
    number: invoiceNumber(brandId, Number(inv.number)),
    kind: inv.kind,
    status: inv.status,
    brand: { id: brand.id, name: brand.name },
    customer: { id: inv.customer_id, name: customer?.name ?? null, email: customer?.email ?? '' },
    currency: inv.currency,
    issuedAt: iso(inv.issued_at)!,
    dueAt: iso(inv.due_at)!,
    period: { number: inv.period_number, start: iso(inv.period_start), end: iso(inv.period_end) },
    lines: lines.map(
      (l: Record<string, any>): InvoiceLineDocument => ({
        position: l.position,
        kind: l.kind,
        description: l.description,
        metric: l.metric,
        quantity: l.quantity === null ? null : String(l.quantity).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, ''),
        unitPrice: l.unit_price,
        amountMinor: Number(l.amount_minor),
        periodStart: iso(l.period_start),
        periodEnd: iso(l.period_end),
        detail: l.detail,
      }),
    ),
    subtotalMinor: Number(inv.subtotal_minor),
    discountMinor: Number(inv.discount_minor),
    taxMinor: Number(inv.tax_minor),
    taxRate: String(inv.tax_rate).replace(/\.?0+$/, '') || '0',
    taxInclusive: inv.tax_inclusive,
    creditAppliedMinor: Number(inv.credit_applied_minor),
    totalMinor: Number(inv.total_minor),
    amountDueMinor: Number(inv.amount_due_minor),
    paymentInstructions:
      (brand.settings?.paymentInstructions as string | undefined) ??
      'Your saved payment method is charged automatically on the issue date. To pay another way, reply to this email quoting the invoice number.',
  };
}

export async function listInvoices(db: Db, brandId: string, customerId: string) {
  return db('invoices')
    .where({ brand_id: brandId, customer_id: customerId })
    .orderBy('number', 'asc')
    .select('id', 'number', 'kind', 'status', 'currency', 'period_number', 'period_start', 'period_end', 'total_minor', 'amount_due_minor', 'issued_at', 'due_at');
}
