/** Reads behind the invoice API, always scoped to one brand. */
import type { Db } from '../infra/db';
import { listInvoices } from './invoices';

export interface InvoiceListRow {
  id: string;
  number: number;
  kind: 'opening' | 'period' | 'final' | 'credit_note';
  status: 'finalized' | 'paid' | 'void';
  currency: string;
  periodNumber: number | null;
  periodStart: string | null;
  periodEnd: string | null;
  totalMinor: number;
  amountDueMinor: number;
  issuedAt: string;
  dueAt: string;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/** The customer's invoices and credit notes, newest first; undefined when the brand has no such customer. */
export async function customerInvoices(db: Db, brandId: string, customerId: string): Promise<InvoiceListRow[] | undefined> {
  const customer = await db('customers').where({ brand_id: brandId, id: customerId }).first('id');
  if (!customer) return undefined;
  const rows: Array<Record<string, any>> = await listInvoices(db, brandId, customerId);
  // Numbers are gapless and issued in order, so the highest number is the newest document.
  return rows
    .map((r) => ({
      id: r.id,
      number: Number(r.number),
      kind: r.kind,
      status: r.status,
      currency: String(r.currency),
      periodNumber: r.period_number ?? null,
      periodStart: iso(r.period_start),
      periodEnd: iso(r.period_end),
      totalMinor: Number(r.total_minor),
      amountDueMinor: Number(r.amount_due_minor),
      issuedAt: iso(r.issued_at)!,
      dueAt: iso(r.due_at)!,
    }))
    .sort((a, b) => b.number - a.number);
}

/** The currency of one of the brand's invoices, or undefined when the brand has no such invoice. */
export async function invoiceCurrency(db: Db, brandId: string, invoiceId: string): Promise<string | undefined> {
  const row = await db('invoices').where({ id: invoiceId, brand_id: brandId }).first('currency');
  return row ? String(row.currency) : undefined;
}
