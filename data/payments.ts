/**
 * Payments against invoices and write-offs. Each is written with its ledger transaction in one
 * database transaction; a payment row is unique by the idempotency key of the charge, so the
 * result of a charge is recorded once however often the activity is retried.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../infra/db';
import { postTransaction } from './ledger';

type Trx = Knex.Transaction | Db;

/**
 * What is still owed on an invoice: its amount due, less what credit notes took off
 * receivables, less succeeded payments and write-offs.
 */
export async function invoiceBalanceMinor(trx: Trx, brandId: string, invoiceId: string): Promise<number> {
  const row = await trx.select(trx.raw(`${INVOICE_BALANCE_SQL} as balance`, balanceParams(brandId, invoiceId))).first();
  return Number(row?.balance ?? 0);
}

/**
 * invoiceBalanceMinor as one SQL expression (parameters: balanceParams). A credit note belongs to
 * the customer of the invoice it corrects, so it is looked up among that customer's invoices (the
 * (brand_id, customer_id) index): `corrects_invoice_id` has no index of its own, and filtering the
 * brand's invoices by it read every invoice of the brand, three times per charge.
 */
export const INVOICE_BALANCE_SQL = `((select amount_due_minor from invoices where id = ? and brand_id = ?)
         + coalesce((select sum(amount_due_minor) from invoices
                      where brand_id = ? and corrects_invoice_id = ?
                        and customer_id = (select customer_id from invoices where id = ? and brand_id = ?)), 0)
         - coalesce((select sum(amount_minor) from payments where invoice_id = ? and brand_id = ? and status = 'succeeded'), 0)
         - coalesce((select sum(amount_minor) from write_offs where invoice_id = ? and brand_id = ?), 0))`;

export function balanceParams(brandId: string, invoiceId: string): string[] {
  return [invoiceId, brandId, brandId, invoiceId, invoiceId, brandId, invoiceId, brandId, invoiceId, brandId];
}

/** The customer's invoices with something still owed, oldest first. */
export async function unpaidInvoices(db: Db, brandId: string, customerId: string): Promise<Array<{ invoiceId: string; currency: string; balanceMinor: number }>> {
  const invoices = await db('invoices')
    .where({ brand_id: brandId, customer_id: customerId })
    .whereNot('kind', 'credit_note')
    .whereIn('status', ['finalized'])
    .orderBy('number')
    .select('id', 'currency');
  const out = [];
  for (const inv of invoices) {
    const balanceMinor = await invoiceBalanceMinor(db, brandId, inv.id);
    if (balanceMinor > 0) out.push({ invoiceId: inv.id as string, currency: inv.currency as string, balanceMinor });
  }
  return out;
}

export interface ChargeRecord {
  brandId: string;
  customerId: string;
  invoiceId: string;
  idempotencyKey: string;
  gateway: string;
  status: 'succeeded' | 'declined';
  gatewayPaymentId?: string;
  declineCode?: string;
  declineMessage?: string;
  amountMinor: number;
  feeMinor?: number;
  currency: string;
}

/**
 * Records a charge's result once. A success pays the invoice down (DR gateway clearing,
 * CR receivables) and marks it paid when nothing is left owing. What it brings beyond the
 * invoice's balance (an overpayment, or a payment for an invoice already settled) becomes the
 * customer's credit (CR customer_credit), which the next invoice applies; the row keeps that
 * part in `credited_minor` and only the applied part in `amount_minor`, so receivables stay
 * equal to the documents. A succeeded gateway payment already recorded under another key (the
 * webhook and the charge activity racing to record the same payment) is returned, not booked
 * twice.
 */
export async function recordCharge(db: Db, c: ChargeRecord): Promise<{ paymentId: string; recorded: boolean; balanceMinor: number }> {
  return db.transaction(async (trx) => {
    const invoice = await trx('invoices').where({ id: c.invoiceId, brand_id: c.brandId }).forUpdate().first('id', 'status');
    if (c.status === 'succeeded' && c.gatewayPaymentId) {
      const same = await trx('payments')
        .where({ brand_id: c.brandId, gateway: c.gateway, gateway_payment_id: c.gatewayPaymentId, status: 'succeeded' })
        .first('id');
      if (same) return { paymentId: same.id as string, recorded: false, balanceMinor: await invoiceBalanceMinor(trx, c.brandId, c.invoiceId) };
    }
    const owedMinor = invoice && invoice.status !== 'void' ? Math.max(0, await invoiceBalanceMinor(trx, c.brandId, c.invoiceId)) : 0;
    const appliedMinor = c.status === 'succeeded' ? Math.min(c.amountMinor, owedMinor) : c.amountMinor;
    const creditedMinor = c.amountMinor - appliedMinor;
    const id = `pay_${crypto.randomUUID().replace(/-/g, '')}`;
    const inserted = await trx('payments')
      .insert({
        id,
        brand_id: c.brandId,
        customer_id: c.customerId,
        invoice_id: c.invoiceId,
        idempotency_key: c.idempotencyKey,
        gateway: c.gateway,
        gateway_payment_id: c.gatewayPaymentId ?? null,
        status: c.status,
        decline_code: c.declineCode ?? null,
        decline_message: c.declineMessage ?? null,
        amount_minor: appliedMinor,
        credited_minor: creditedMinor,
        fee_minor: c.feeMinor ?? null,
        currency: c.currency,
      })
      .onConflict(['brand_id', 'idempotency_key'])
      .ignore()
      .returning('id');
    const paymentId = inserted.length ? id : ((await trx('payments').where({ brand_id: c.brandId, idempotency_key: c.idempotencyKey }).first('id')).id as string);
    if (inserted.length && c.status === 'succeeded') {
      await postTransaction(trx, {
        brandId: c.brandId,
        customerId: c.customerId,
        kind: 'payment',
        documentId: paymentId,
        currency: c.currency,
        entries: [
          { account: 'gateway_clearing', amountMinor: c.amountMinor },
          { account: 'receivables', amountMinor: -appliedMinor },
          { account: 'customer_credit', amountMinor: -creditedMinor },
        ].filter((e) => e.amountMinor !== 0),
      });
    }
    const balanceMinor = await invoiceBalanceMinor(trx, c.brandId, c.invoiceId);
    if (balanceMinor <= 0) await trx('invoices').where({ id: c.invoiceId, brand_id: c.brandId, status: 'finalized' }).update({ status: 'paid' });
    return { paymentId, recorded: inserted.length > 0, balanceMinor };
  });
}

/** Moves what is left of an invoice to bad debt (DR bad_debt, CR receivables), once. */
export async function writeOffInvoice(db: Db, brandId: string, customerId: string, invoiceId: string): Promise<{ amountMinor: number }> {
  return db.transaction(async (trx) => {
    const inv = await trx('invoices').where({ id: invoiceId, brand_id: brandId }).forUpdate().first('currency', 'status');
    if (!inv) throw new Error(`invoice ${invoiceId} not found`);
    const existing = await trx('write_offs').where({ brand_id: brandId, invoice_id: invoiceId }).first('amount_minor');
    if (existing) return { amountMinor: Number(existing.amount_minor) };
    const balance = await invoiceBalanceMinor(trx, brandId, invoiceId);
    if (balance <= 0) return { amountMinor: 0 };
    const id = `wo_${crypto.randomUUID().replace(/-/g, '')}`;
    await trx('write_offs').insert({ id, brand_id: brandId, customer_id: customerId, invoice_id: invoiceId, amount_minor: balance, currency: inv.currency });
    await postTransaction(trx, {
      brandId,
      customerId,
      kind: 'write_off',
      documentId: id,
      currency: inv.currency,
      entries: [
        { account: 'bad_debt', amountMinor: balance },
        { account: 'receivables', amountMinor: -balance },
      ],
    });
    await trx('invoices').where({ id: invoiceId, brand_id: brandId }).update({ status: 'written_off' });
    return { amountMinor: balance };
  });
}
