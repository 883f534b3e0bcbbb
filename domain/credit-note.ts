/**
 * Credit notes: how much of a finalized invoice may still be credited, and how one credit splits
 * into net revenue and tax, and into receivables and customer credit. Pure and exact.
 *
 * Tax is credited in proportion to the amount, by the one rounding rule (half away from zero),
 * applied to the running total rather than to each note alone: after notes for a cumulative
 * amount c, exactly round(invoiceTax × c / invoiceTotal) of tax has been credited. Rounding each
 * note on its own would let several partial notes together credit more (or less) tax than the
 * invoice charged; cumulatively, a note for the full remainder always lands on the invoice's
 * own tax and net, to the minor unit.
 */
import { divRoundHalfAway } from './invoice';

export interface CreditableInvoice {
  /** The invoice's total (tax included), minor units, > 0 to be creditable. */
  totalMinor: number;
  /** The invoice's tax, 0 ≤ tax ≤ total. */
  taxMinor: number;
  /** Sum of the credit notes already issued against it, as positive amounts. */
  creditedMinor: number;
  /** Sum of the tax those notes credited, as a positive amount. */
  creditedTaxMinor: number;
}

export interface CreditSplit {
  /** The credited amount, tax included. */
  amountMinor: number;
  /** The revenue part (amount − tax). */
  netMinor: number;
  taxMinor: number;
  /** Reduces what the customer still owes on the invoice. */
  receivablesMinor: number;
  /** Returned to the customer's credit balance (the part already paid or settled by credit). */
  customerCreditMinor: number;
}

export class CreditNoteAmountError extends RangeError {
  override name = 'CreditNoteAmountError';
  constructor(
    message: string,
    /** What may still be credited, for the caller's message. */
    readonly creditableMinor: number,
  ) {
    super(message);
  }
}

function assertWhole(n: number, what: string): void {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} must be whole minor units, got ${n}`);
}

/** What can still be credited: the total less every credit note already issued against it. */
export function creditableMinor(inv: CreditableInvoice): number {
  return Math.max(0, inv.totalMinor - inv.creditedMinor);
}

/**
 * Splits a credit of `amountMinor` (tax included) against an invoice. `stillDueMinor` is what the
 * customer still owes on the invoice: that much of the credit reduces receivables, the rest
 * becomes customer credit.
 */
export function splitCredit(inv: CreditableInvoice, amountMinor: number, stillDueMinor: number): CreditSplit {
  for (const [n, what] of [
    [inv.totalMinor, 'invoice total'],
    [inv.taxMinor, 'invoice tax'],
    [inv.creditedMinor, 'credited amount'],
    [inv.creditedTaxMinor, 'credited tax'],
    [amountMinor, 'credit amount'],
    [stillDueMinor, 'amount still due'],
  ] as const) {
    assertWhole(n, what);
  }
  if (inv.taxMinor < 0 || inv.taxMinor > inv.totalMinor) throw new RangeError('invoice tax must lie between 0 and the invoice total');
  const remaining = creditableMinor(inv);
  if (amountMinor <= 0) throw new CreditNoteAmountError('the credit amount must be positive', remaining);
  if (amountMinor > remaining) throw new CreditNoteAmountError(`the credit exceeds what is still creditable (${remaining} minor units)`, remaining);

  const total = BigInt(inv.totalMinor);
  const cumulative = BigInt(inv.creditedMinor + amountMinor);
  const cumulativeTax = divRoundHalfAway(BigInt(inv.taxMinor) * cumulative, total);
  // Clamped so earlier notes made by any other rule can never push this one out of bounds.
  const remainingTax = BigInt(Math.max(0, inv.taxMinor - inv.creditedTaxMinor));
  let tax = cumulativeTax - BigInt(inv.creditedTaxMinor);
  if (tax < 0n) tax = 0n;
  if (tax > remainingTax) tax = remainingTax;
  if (tax > BigInt(amountMinor)) tax = BigInt(amountMinor);
  const taxMinor = Number(tax);
  const receivablesMinor = Math.min(amountMinor, Math.max(0, stillDueMinor));
  return {
    amountMinor,
    netMinor: amountMinor - taxMinor,
    taxMinor,
    receivablesMinor,
    customerCreditMinor: amountMinor - receivablesMinor,
  };
}

/**
 * The credit note's ledger transaction (debits positive, credits negative; sums to zero): the
 * invoice's revenue and tax reversed in proportion, against receivables and customer credit.
 */
export function creditNoteLedgerEntries(s: CreditSplit): Array<{ account: string; amountMinor: number }> {
  return [
    { account: 'revenue', amountMinor: s.netMinor },
    { account: 'tax_payable', amountMinor: s.taxMinor },
    { account: 'receivables', amountMinor: -s.receivablesMinor },
    { account: 'customer_credit', amountMinor: -s.customerCreditMinor },
  ].filter((e) => e.amountMinor !== 0);
}
