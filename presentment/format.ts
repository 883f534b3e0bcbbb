/**
 * How an InvoiceDocument reads to a person, shared by the HTML, PDF and email renderings so the
 * three never disagree: amounts, quantities, dates, periods, tax wording and the usage breakdown.
 * Pure string work: no floats touch an amount, and dates are read in UTC so every rendering of
 * the same document is byte-identical wherever it runs.
 */
import type { InvoiceDocument, InvoiceLineDocument } from '../domain/invoice-document';
import { formatMinor, minorExponent } from '../domain/money';

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/** "1234567.0004" → "1,234,567.0004"; anything that is not a plain decimal is returned as is. */
export function groupThousands(decimal: string): string {
  const m = DECIMAL.exec(decimal);
  if (!m) return decimal;
  const [, sign = '', whole = '', frac] = m;
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${sign}${grouped}${frac !== undefined ? `.${frac}` : ''}`;
}

/** Minor units as "USD 1,234.56"; negatives as "-USD 10.00". */
export function formatMoney(minor: number | bigint, currency: string): string {
  const text = formatMinor(BigInt(minor), currency);
  const negative = text.startsWith('-');
  return `${negative ? '-' : ''}${currency} ${groupThousands(negative ? text.slice(1) : text)}`;
}

/** An exact decimal amount (a unit price or an unrounded tier amount) with its currency, digits as given. */
export function formatExactMoney(decimal: string, currency: string): string {
  const negative = decimal.startsWith('-');
  return `${negative ? '-' : ''}${currency} ${groupThousands(negative ? decimal.slice(1) : decimal)}`;
}

/** "19.0000" → "19", "7.50" → "7.5": a tax rate as people write it. */
export function formatRate(rate: string): string {
  const m = DECIMAL.exec(rate.trim());
  if (!m) return rate;
  const [, sign = '', whole = '', frac = ''] = m;
  const trimmed = frac.replace(/0+$/, '');
  return `${sign}${whole}${trimmed ? `.${trimmed}` : ''}`;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAY_MS = 86_400_000;

function parseDate(iso: string): Date | undefined {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function dateOnly(d: Date): string {
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

function clock(d: Date): string {
  return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

/** "25 November 2026" (UTC). */
export function formatDate(iso: string): string {
  const d = parseDate(iso);
  return d ? dateOnly(d) : iso;
}

const isMidnight = (d: Date) => d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0 && d.getUTCMilliseconds() === 0;

/**
 * A billing period for people. Periods end where the next one starts, so a period of whole days
 * is shown with its last day ("1 November 2026 – 30 November 2026"); a period that starts or
 * ends within a day (sandbox brands bill by the minute) is shown with UTC times.
 */
export function formatPeriod(startIso: string | null, endIso: string | null): string | undefined {
  if (!startIso || !endIso) return undefined;
  const start = parseDate(startIso);
  const end = parseDate(endIso);
  if (!start || !end) return `${startIso} – ${endIso}`;
  if (isMidnight(start) && isMidnight(end) && end.getTime() - start.getTime() >= DAY_MS) {
    const last = new Date(end.getTime() - DAY_MS);
    return last.getTime() === start.getTime() ? dateOnly(start) : `${dateOnly(start)} – ${dateOnly(last)}`;
  }
  const sameDay = dateOnly(start) === dateOnly(end);
  return sameDay
    ? `${dateOnly(start)}, ${clock(start)} – ${clock(end)} UTC`
    : `${dateOnly(start)} ${clock(start)} – ${dateOnly(end)} ${clock(end)} UTC`;
}

export function documentTitle(doc: InvoiceDocument): string {
  return `${doc.kind === 'credit_note' ? 'Credit note' : 'Invoice'} ${doc.number}`;
}

/**
 * What a credit note asks of the customer (nothing) and which invoice it corrects, in place of
 * the brand's payment instructions.
 */
export function creditNoteInstructions(doc: InvoiceDocument, correctedNumber: string | null): string {
  const c = doc.currency;
  const reduces = -doc.amountDueMinor;
  const toBalance = -doc.creditAppliedMinor;
  const parts = [`This credit note corrects invoice ${correctedNumber ?? '(unknown)'}. There is nothing to pay.`];
  if (reduces > 0) parts.push(`It reduces what you owe on that invoice by ${formatMoney(reduces, c)}.`);
  if (toBalance > 0) parts.push(`${formatMoney(toBalance, c)} is added to your credit balance and used on your next invoice.`);
  return parts.join(' ');
}

export function customerLabel(doc: InvoiceDocument): string {
  return doc.customer.name?.trim() || doc.customer.email;
}

export function taxLabel(doc: InvoiceDocument): string {
  const rate = formatRate(doc.taxRate);
  return doc.taxInclusive ? `Tax included (${rate}%)` : `Tax (${rate}%)`;
}

export function taxNote(doc: InvoiceDocument): string {
  const rate = formatRate(doc.taxRate);
  if (/^0(\.0*)?$/.test(rate) && doc.taxMinor === 0) return 'No tax is charged on this invoice.';
  return doc.taxInclusive
    ? `Prices include tax at ${rate}%; the tax shown is part of the subtotal, not added to it.`
    : `Prices exclude tax; tax at ${rate}% is added to them.`;
}

export interface TotalRow {
  label: string;
  amount: string;
  /** The bottom line: what the customer pays. */
  emphasis?: boolean;
}

/**
 * The totals block, top to bottom. Discount and credit rows only appear when they are not zero;
 * they are shown as deductions whichever sign the document stores them with.
 */
export function totalRows(doc: InvoiceDocument): TotalRow[] {
  const c = doc.currency;
  const deduction = (minor: number) => formatMoney(-Math.abs(minor), c);
  const rows: TotalRow[] = [{ label: 'Subtotal', amount: formatMoney(doc.subtotalMinor, c) }];
  if (doc.discountMinor !== 0) rows.push({ label: 'Discount', amount: deduction(doc.discountMinor) });
  rows.push({ label: taxLabel(doc), amount: formatMoney(doc.taxMinor, c) });
  rows.push({ label: 'Total', amount: formatMoney(doc.totalMinor, c) });
  if (doc.creditAppliedMinor > 0) rows.push({ label: 'Credit applied', amount: deduction(doc.creditAppliedMinor) });
  // A credit note's negative credit applied is the part returned to the customer's balance.
  if (doc.creditAppliedMinor < 0) rows.push({ label: 'Added to your credit balance', amount: formatMoney(-doc.creditAppliedMinor, c) });
  rows.push({ label: 'Amount due', amount: formatMoney(doc.amountDueMinor, c), emphasis: true });
  return rows;
}

export interface LineRow {
  description: string;
  /** The line's own service period, when it has one. */
  period?: string;
  quantity: string;
  unitPrice: string;
  amount: string;
}

export function lineRows(doc: InvoiceDocument): LineRow[] {
  return [...doc.lines]
    .sort((a, b) => a.position - b.position)
    .map((line) => ({
      description: line.description,
      period: formatPeriod(line.periodStart, line.periodEnd),
      quantity: line.quantity === null ? '' : groupThousands(line.quantity),
      unitPrice: line.unitPrice === null ? '' : formatExactMoney(line.unitPrice, doc.currency),
      amount: formatMoney(line.amountMinor, doc.currency),
    }));
}

export interface BreakdownRow {
  description: string;
  quantity: string;
  unitPrice: string;
  /** At full precision, before the line is rounded once to the minor unit. */
  amount: string;
}

/** Why the tiers may add up to more digits than the line: the one rounding rule, in words. */
export function roundingNote(currency: string): string {
  const exp = minorExponent(currency);
  const step = exp === 0 ? `a whole ${currency}` : `${currency} 0.${'0'.repeat(exp - 1)}1`;
  return `Line amount, rounded once to ${step} (half away from zero)`;
}

export interface UsageDetail {
  description: string;
  rows: BreakdownRow[];
  /** The line's rounded amount, which is what the invoice adds up. */
  lineAmount: string;
}

const asText = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined;

function breakdownOf(line: InvoiceLineDocument, currency: string): BreakdownRow[] {
  const raw = line.detail?.['breakdown'];
  if (!Array.isArray(raw)) return [];
  const rows: BreakdownRow[] = [];
  for (const item of raw as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const r = item as Record<string, unknown>;
    const description = asText(r['description']);
    const quantity = asText(r['quantity']);
    const unitPrice = asText(r['unitPrice']);
    const amountExact = asText(r['amountExact']);
    // Rating writes the breakdown; a malformed entry is left out rather than shown half-empty.
    if (description === undefined || quantity === undefined || amountExact === undefined) continue;
    rows.push({
      description,
      quantity: groupThousands(quantity),
      unitPrice: unitPrice === undefined ? '' : formatExactMoney(unitPrice, currency),
      amount: formatExactMoney(amountExact, currency),
    });
  }
  return rows;
}

/** Usage lines that carry a rating breakdown (tiers, included allowance…), for the usage detail section. */
export function usageDetails(doc: InvoiceDocument): UsageDetail[] {
  return [...doc.lines]
    .sort((a, b) => a.position - b.position)
    .filter((l) => l.kind === 'usage' || l.kind === 'usage_adjustment')
    .map((l) => ({ description: l.description, rows: breakdownOf(l, doc.currency), lineAmount: formatMoney(l.amountMinor, doc.currency) }))
    .filter((d) => d.rows.length > 0);
}

export function statusLabel(doc: InvoiceDocument): string | undefined {
  if (doc.status === 'paid') return 'Paid';
  if (doc.status === 'void') return 'Void';
  return undefined;
}

/**
 * What the header's period is: a period invoice bills usage of the period that closed (its
 * recurring line names the next period it pays in advance); an opening invoice, the period it opens.
 */
export function periodLabel(doc: InvoiceDocument): string {
  return doc.kind === 'period' || doc.kind === 'final' ? 'Usage period' : 'Service period';
}
