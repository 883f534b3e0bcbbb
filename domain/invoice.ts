/**
 * Invoice calculation: pure, exact, integer minor units throughout.
 *
 * The rules, in order:
 * 1. Lines are already rounded (each usage line was rated at full precision and rounded once,
 *    half away from zero, by `roundToMinor`). The recurring fee is billed in advance for the
 *    period it names; usage in arrears. A discount from the offer is its own negative line.
 * 2. subtotal = sum of the charge lines; discount = −(sum of the discount lines);
 *    net = subtotal − discount.
 * 3. Tax on the net, once per invoice, rounded half away from zero:
 *    exclusive: tax = round(net × rate / 100), total = net + tax;
 *    inclusive: the prices already hold the tax, tax = net − round(net × 100 / (100 + rate)),
 *    total = net.
 * 4. Customer credit is applied up to the total: amountDue = total − creditApplied.
 * So total always equals the sum of the lines plus (exclusive) the tax, to the minor unit.
 */
import type { InvoiceLineDocument, InvoiceLineKind } from './invoice-document';

export interface TaxRule {
  /** Percent as an exact decimal string with at most 4 decimals, e.g. "19" or "7.25". */
  rate: string;
  inclusive: boolean;
}

export type DraftLine = Omit<InvoiceLineDocument, 'position'>;

export interface InvoiceTotals {
  subtotalMinor: number;
  discountMinor: number;
  taxMinor: number;
  totalMinor: number;
  creditAppliedMinor: number;
  amountDueMinor: number;
  /** A negative total turned into customer credit (the invoice then owes nothing). */
  creditIssuedMinor: number;
}

const RATE_SCALE = 10_000n; // rates carry up to 4 decimals
const CHARGE_KINDS: InvoiceLineKind[] = ['recurring', 'usage', 'usage_adjustment', 'proration'];

/** Integer division rounding half away from zero (the one rounding rule, on integers). */
export function divRoundHalfAway(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError('denominator must be positive');
  const negative = numerator < 0n;
  const n = negative ? -numerator : numerator;
  const q = (n * 2n + denominator) / (denominator * 2n);
  return negative ? -q : q;
}

export function parseRate(rate: string): bigint {
  const m = /^(\d{1,3})(?:\.(\d{1,4}))?$/.exec(rate);
  if (!m) throw new RangeError(`tax rate "${rate}" must be a percentage such as "19" or "7.25"`);
  const scaled = BigInt(m[1]!) * RATE_SCALE + BigInt((m[2] ?? '').padEnd(4, '0'));
  if (scaled > 100n * RATE_SCALE) throw new RangeError(`tax rate "${rate}" is above 100 %`);
  return scaled;
}

export function taxOn(netMinor: bigint, tax: TaxRule): bigint {
  const rate = parseRate(tax.rate);
  if (rate === 0n) return 0n;
  const hundred = 100n * RATE_SCALE;
  if (!tax.inclusive) return divRoundHalfAway(netMinor * rate, hundred);
  return netMinor - divRoundHalfAway(netMinor * hundred, hundred + rate);
}

function safe(n: bigint, what: string): number {
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw new RangeError(`${what} is out of range`);
  return Number(n);
}

export function invoiceTotals(lines: DraftLine[], tax: TaxRule, creditBalanceMinor: number): InvoiceTotals {
  let subtotal = 0n;
  let discount = 0n;
  for (const line of lines) {
    if (!Number.isSafeInteger(line.amountMinor)) throw new RangeError(`line "${line.description}" is not whole minor units`);
    const amount = BigInt(line.amountMinor);
    if (CHARGE_KINDS.includes(line.kind)) subtotal += amount;
    else discount -= amount; // discount and credit lines are negative
  }
  const net = subtotal - discount;
  const taxMinor = taxOn(net, tax);
  const total = tax.inclusive ? net : net + taxMinor;
  const credit = BigInt(Math.max(0, creditBalanceMinor));
  const creditApplied = total > 0n ? (credit < total ? credit : total) : 0n;
  // A negative total (a cancellation's credit for unused time above what is still billed) is
  // owed to the customer: it becomes customer credit, and nothing is due.
  const creditIssued = total < 0n ? -total : 0n;
  return {
    subtotalMinor: safe(subtotal, 'subtotal'),
    discountMinor: safe(discount, 'discount'),
    taxMinor: safe(taxMinor, 'tax'),
    totalMinor: safe(total, 'total'),
    creditAppliedMinor: safe(creditApplied, 'credit applied'),
    amountDueMinor: safe(total - creditApplied + creditIssued, 'amount due'),
    creditIssuedMinor: safe(creditIssued, 'credit issued'),
  };
}

/** Numbers lines 1..n in the order given. */
export function numberLines(lines: DraftLine[]): InvoiceLineDocument[] {
  return lines.map((l, i) => ({ ...l, position: i + 1 }));
}

export function invoiceNumber(brandId: string, n: number): string {
  return `${brandId.toUpperCase()}-${String(n).padStart(6, '0')}`;
}

/**
 * The ledger transaction an invoice writes (debits positive, credits negative; sums to zero):
 * receivable for the total, revenue for the net of tax, tax payable, and any customer credit
 * used to settle part of it.
 */
export function invoiceLedgerEntries(t: InvoiceTotals): Array<{ account: string; amountMinor: number }> {
  const revenue = t.totalMinor - t.taxMinor;
  const entries = [
    { account: 'receivables', amountMinor: t.totalMinor },
    { account: 'revenue', amountMinor: -revenue },
    { account: 'tax_payable', amountMinor: -t.taxMinor },
  ];
  if (t.creditAppliedMinor > 0) {
    entries.push({ account: 'customer_credit', amountMinor: t.creditAppliedMinor }, { account: 'receivables', amountMinor: -t.creditAppliedMinor });
  }
  if (t.creditIssuedMinor > 0) {
    entries.push({ account: 'receivables', amountMinor: t.creditIssuedMinor }, { account: 'customer_credit', amountMinor: -t.creditIssuedMinor });
  }
  return entries.filter((e) => e.amountMinor !== 0);
}
