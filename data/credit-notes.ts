/**
 * Credit notes: the only way to correct a finalized invoice, which is never edited. A credit
 * note is an `invoices` row of kind 'credit_note' (negative total, its own gapless number,
 * `corrects_invoice_id`) with one 'credit' line and a balanced ledger transaction, all written
 * in one database transaction that holds the corrected invoice's row lock, so two notes against
 * the same invoice can never together credit more than it charged. Idempotent by (brand,
 * customer, billing key "credit:<idempotency key>").
 *
 * Receivables stay equal to the documents behind them (`checkLedger`): the part of a credit that
 * reduces what is still owed is the note's (negative) amount due; the rest, credit for a part
 * already paid or settled by customer credit, goes to the customer's credit balance, which the
 * next invoice uses.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { creditableMinor, CreditNoteAmountError, creditNoteLedgerEntries, splitCredit } from '../domain/credit-note';
import { invoiceNumber } from '../domain/invoice';
import type { Db } from '../infra/db';
import { nextInvoiceNumber } from './invoices';
import { customerAccountMinor, postTransaction } from './ledger';
import { invoiceBalanceMinor } from './payments';

export const CreditNoteErrorTypes = {
  INVOICE_NOT_FOUND: 'INVOICE_NOT_FOUND',
  NOT_CREDITABLE: 'NOT_CREDITABLE',
  EXCEEDS_CREDITABLE: 'EXCEEDS_CREDITABLE',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
} as const;
export type CreditNoteErrorType = (typeof CreditNoteErrorTypes)[keyof typeof CreditNoteErrorTypes];

export class CreditNoteError extends Error {
  override name = 'CreditNoteError';
  constructor(
    readonly type: CreditNoteErrorType,
    message: string,
    /** What may still be credited on the invoice, when that is the problem. */
    readonly creditableMinor?: number,
    readonly currency?: string,
  ) {
    super(message);
  }
}

export interface IssueCreditNoteInput {
  brandId: string;
  invoiceId: string;
  /** Tax included, in the invoice's currency; 'full' credits everything still creditable. */
  amountMinor: number | 'full';
  /** Shown to the customer as the credit line's description. */
  reason: string;
  idempotencyKey: string;
  /** Defaults to now. */
  issuedAt?: string;
}

export interface IssuedCreditNote {
  creditNoteId: string;
  /** false when the idempotency key had already issued this note. */
  created: boolean;
}

type Trx = Knex.Transaction | Db;

interface CreditTotals {
  /** Positive sums over the notes already issued against the invoice. */
  creditedMinor: number;
  creditedTaxMinor: number;
}

async function creditTotals(trx: Trx, brandId: string, invoiceId: string): Promise<CreditTotals> {
  const row = await trx('invoices')
    .where({ brand_id: brandId, corrects_invoice_id: invoiceId, kind: 'credit_note' })
    .first(
      trx.raw('coalesce(-sum(total_minor), 0)::text as credited'),
      trx.raw('coalesce(-sum(tax_minor), 0)::text as tax'),
    );
  return { creditedMinor: Number(row?.credited ?? 0), creditedTaxMinor: Number(row?.tax ?? 0) };
}

/**
 * What the customer still owes on a finalized invoice (the balance collections charges: amount
 * due less credit notes, payments and write-offs), or nothing once it is paid, void or written off.
 */
export async function invoiceOutstandingMinor(trx: Trx, brandId: string, invoiceId: string): Promise<number> {
  const inv = await trx('invoices').where({ id: invoiceId, brand_id: brandId }).first('status', 'kind');
  if (!inv || inv.kind === 'credit_note' || inv.status !== 'finalized') return 0;
  return Math.max(0, await invoiceBalanceMinor(trx, brandId, invoiceId));
}

const requestOf = (amount: number | 'full') => (amount === 'full' ? 'full' : String(amount));

async function issueOnce(db: Db, input: IssueCreditNoteInput): Promise<IssuedCreditNote> {
  return db.transaction(async (trx) => {
    // The lock serializes every note against this invoice (and a payment that updates it).
    const inv = await trx('invoices').where({ id: input.invoiceId, brand_id: input.brandId }).forUpdate().first();
    if (!inv) throw new CreditNoteError(CreditNoteErrorTypes.INVOICE_NOT_FOUND, `invoice "${input.invoiceId}" not found`);
    const currency = String(inv.currency);
    const billingKey = `credit:${input.idempotencyKey}`;

    const existing = await trx('invoices').where({ brand_id: input.brandId, customer_id: inv.customer_id, billing_key: billingKey }).first('id', 'corrects_invoice_id');
    if (existing) {
      const line = await trx('invoice_lines').where({ invoice_id: existing.id }).orderBy('position').first('description', 'detail');
      const same =
        existing.corrects_invoice_id === inv.id && line?.description === input.reason && String(line?.detail?.requested) === requestOf(input.amountMinor);
      if (!same) {
        throw new CreditNoteError(CreditNoteErrorTypes.IDEMPOTENCY_KEY_REUSED, 'this idempotency key already issued a different credit note');
      }
      return { creditNoteId: existing.id as string, created: false };
    }

    if (inv.kind === 'credit_note') throw new CreditNoteError(CreditNoteErrorTypes.NOT_CREDITABLE, 'a credit note cannot itself be credited');
    if (inv.status === 'void') throw new CreditNoteError(CreditNoteErrorTypes.NOT_CREDITABLE, 'a void invoice cannot be credited');

    const credited = await creditTotals(trx, input.brandId, inv.id);
    const creditable = {
      totalMinor: Number(inv.total_minor),
      taxMinor: Number(inv.tax_minor),
      creditedMinor: credited.creditedMinor,
      creditedTaxMinor: credited.creditedTaxMinor,
    };
    const remaining = creditableMinor(creditable);
    const amountMinor = input.amountMinor === 'full' ? remaining : input.amountMinor;
    if (remaining <= 0) {
      throw new CreditNoteError(CreditNoteErrorTypes.EXCEEDS_CREDITABLE, 'nothing is left to credit on this invoice', 0, currency);
    }
    // Documents say what is still owed on this invoice; the customer's receivables balance caps
    // it, so a payment recorded without changing the invoice can never drive receivables negative.
    const documentsDue = await invoiceOutstandingMinor(trx, input.brandId, input.invoiceId);
    const stillDue = Math.min(documentsDue, Math.max(0, await customerAccountMinor(trx, input.brandId, inv.customer_id, 'receivables', currency)));
    let split;
    try {
      split = splitCredit(creditable, amountMinor, stillDue);
    } catch (err) {
      if (err instanceof CreditNoteAmountError) {
        throw new CreditNoteError(CreditNoteErrorTypes.EXCEEDS_CREDITABLE, err.message, err.creditableMinor, currency);
      }
      throw err;
    }

    const id = `inv_${crypto.randomUUID().replace(/-/g, '')}`;
    const number = await nextInvoiceNumber(trx, input.brandId);
    const issuedAt = new Date(input.issuedAt ?? Date.now());
    // The credit line carries the price as the invoice showed it: net of tax when tax was added
    // on top, tax included when the prices included it.
    const lineMinor = inv.tax_inclusive ? -split.amountMinor : -split.netMinor;
    await trx('invoices').insert({
      id,
      brand_id: input.brandId,
      customer_id: inv.customer_id,
      number,
      billing_key: billingKey,
      kind: 'credit_note',
      status: 'finalized',
      currency,
      period_number: inv.period_number,
      period_start: inv.period_start,
      period_end: inv.period_end,
      subtotal_minor: lineMinor,
      discount_minor: 0,
      tax_minor: -split.taxMinor,
      tax_rate: inv.tax_rate,
      tax_inclusive: inv.tax_inclusive,
      // amountDue = total − creditApplied, as on every invoice: negative here, the part
      // returned to the customer's credit balance.
      credit_applied_minor: -split.customerCreditMinor,
      total_minor: -split.amountMinor,
      amount_due_minor: -split.receivablesMinor,
      issued_at: issuedAt,
      due_at: issuedAt,
      corrects_invoice_id: inv.id,
    });
    await trx('invoice_lines').insert({
      invoice_id: id,
      position: 1,
      kind: 'credit',
      description: input.reason,
      metric: null,
      quantity: null,
      unit_price: null,
      amount_exact: null,
      amount_minor: lineMinor,
      period_start: inv.period_start,
      period_end: inv.period_end,
      detail: JSON.stringify({
        correctsInvoiceId: inv.id,
        correctsInvoiceNumber: invoiceNumber(input.brandId, Number(inv.number)),
        requested: requestOf(input.amountMinor),
        netMinor: split.netMinor,
        taxMinor: split.taxMinor,
        receivablesMinor: split.receivablesMinor,
        customerCreditMinor: split.customerCreditMinor,
      }),
    });
    await postTransaction(trx, {
      brandId: input.brandId,
      customerId: inv.customer_id,
      kind: 'credit_note',
      documentId: id,
      currency,
      entries: creditNoteLedgerEntries(split),
    });
    return { creditNoteId: id, created: true };
  });
}

const isBillingKeyRace = (err: unknown) =>
  (err as { code?: string }).code === '23505' && String((err as { constraint?: string }).constraint).includes('billing_key');

/**
 * Issues a credit note against a finalized invoice, or returns the one this idempotency key
 * already issued. Throws CreditNoteError for a missing invoice, one that cannot be credited, an
 * amount above what is still creditable, or a key reused for a different note.
 */
export async function issueCreditNote(db: Db, input: IssueCreditNoteInput): Promise<IssuedCreditNote> {
  try {
    return await issueOnce(db, input);
  } catch (err) {
    // The same key raced on two invoices of one customer: the loser's retry finds the winner's
    // note and answers as a repeat would.
    if (isBillingKeyRace(err)) return issueOnce(db, input);
    throw err;
  }
}

export interface InvoiceCredits {
  /** For a credit note: the invoice it corrects. */
  corrects: { id: string; number: string } | null;
  /** For an invoice: the credit notes issued against it, oldest first. */
  creditNotes: Array<{ id: string; number: string; totalMinor: number; issuedAt: string }>;
  /** For an invoice: what may still be credited (0 for a credit note). */
  creditableMinor: number;
  /** For an invoice: what the customer still owes on it (0 for a credit note). */
  outstandingMinor: number;
}

/** How credit notes and an invoice refer to each other, for the API's documents. */
export async function invoiceCredits(db: Db, brandId: string, invoiceId: string): Promise<InvoiceCredits | undefined> {
  const inv = await db('invoices').where({ id: invoiceId, brand_id: brandId }).first('id', 'kind', 'status', 'total_minor', 'tax_minor', 'corrects_invoice_id');
  if (!inv) return undefined;
  if (inv.kind === 'credit_note') {
    const original = inv.corrects_invoice_id ? await db('invoices').where({ id: inv.corrects_invoice_id, brand_id: brandId }).first('id', 'number') : undefined;
    return {
      corrects: original ? { id: original.id, number: invoiceNumber(brandId, Number(original.number)) } : null,
      creditNotes: [],
      creditableMinor: 0,
      outstandingMinor: 0,
    };
  }
  const notes: Array<{ id: string; number: string; total_minor: string; issued_at: Date }> = await db('invoices')
    .where({ brand_id: brandId, corrects_invoice_id: invoiceId, kind: 'credit_note' })
    .orderBy('number')
    .select('id', 'number', 'total_minor', 'issued_at');
  const credited = await creditTotals(db, brandId, invoiceId);
  return {
    corrects: null,
    creditNotes: notes.map((n) => ({ id: n.id, number: invoiceNumber(brandId, Number(n.number)), totalMinor: Number(n.total_minor), issuedAt: new Date(n.issued_at).toISOString() })),
    creditableMinor:
      inv.status === 'void' ? 0 : creditableMinor({ totalMinor: Number(inv.total_minor), taxMinor: Number(inv.tax_minor), ...credited }),
    outstandingMinor: await invoiceOutstandingMinor(db, brandId, invoiceId),
  };
}
