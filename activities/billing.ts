/**
 * The billing cycle's side effects: finalize an invoice (rate usage, compute, number, ledger —
 * one database transaction, idempotent by billing key) and present it to the customer by
 * email, once per invoice however often the activity is retried.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { finalizeInvoice, FinalizeInvoiceInput, loadInvoiceDocument } from '../data/invoices';
import { invoiceNumber } from '../domain/invoice';
import type { Db } from '../infra/db';
import { faultPoint } from '../infra/fault-injection';
import type { Mailer } from '../infra/mailer';
import { INVOICE_LINK_LIFETIME_MS, signInvoiceLink } from '../infra/signed-links';
import { invoiceEmail } from '../presentment/invoice-email';

/** Where the API serves signed invoice links (see api/shared-invoices.ts). */
export const SHARED_INVOICE_PATH = '/v1/shared/invoices';

export type { Mailer };

export interface BillingDeps {
  db: Db;
  mailer: Mailer;
  /** Base URL customers open invoices at, e.g. https://billing.example.com */
  publicUrl: string;
  /** Signs the invoice link in the email so the customer can open it without an API key. */
  linkSecret: string;
}

export interface InvoiceSummary {
  invoiceId: string;
  number: string;
  currency: string;
  totalMinor: number;
  amountDueMinor: number;
  dueAt: string;
  created: boolean;
}

export function createBillingActivities({ db, mailer, publicUrl, linkSecret }: BillingDeps) {
  return {
    async finalizeInvoice(input: FinalizeInvoiceInput): Promise<InvoiceSummary> {
      const { invoiceId, created } = await finalizeInvoice(db, input);
      faultPoint('after-invoice-finalized'); // test-only crash point (CLOSELOOP_FAULT): committed, not yet reported
      // The summary needs one row, not the whole document (brand, customer and lines).
      const inv = await db('invoices').where({ id: invoiceId, brand_id: input.brandId }).first('number', 'currency', 'total_minor', 'amount_due_minor', 'due_at');
      if (!inv) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} vanished`, 'INVOICE_MISSING');
      return {
        invoiceId,
        number: invoiceNumber(input.brandId, Number(inv.number)),
        currency: inv.currency,
        totalMinor: Number(inv.total_minor),
        amountDueMinor: Number(inv.amount_due_minor),
        dueAt: new Date(inv.due_at).toISOString(),
        created,
      };
    },

    /**
     * Emails the invoice. The outbox row (unique per invoice) is claimed before sending and
     * marked sent after, so a retry after a successful send does not send again; a crash
     * between the SMTP send and the mark may resend once, with the same Message-ID.
     */
    async presentInvoice({ brandId, invoiceId }: { brandId: string; invoiceId: string }): Promise<{ sent: boolean }> {
      const doc = await loadInvoiceDocument(db, brandId, invoiceId);
      if (!doc) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} not found`, 'INVOICE_MISSING');
      const dedupeKey = `invoice-ready:${invoiceId}`;
      await db('outbound_messages')
        .insert({
          brand_id: brandId,
          customer_id: doc.customer.id,
          dedupe_key: dedupeKey,
          category: 'transactional',
          template: 'invoice-ready',
          recipient: doc.customer.email,
          data: JSON.stringify({ invoiceId, number: doc.number }),
        })
        .onConflict(['brand_id', 'dedupe_key'])
        .ignore();
      const row = await db('outbound_messages').where({ brand_id: brandId, dedupe_key: dedupeKey }).first('status');
      if (row?.status === 'sent') return { sent: false };
      const token = signInvoiceLink(linkSecret, { brandId, invoiceId }, new Date(Date.now() + INVOICE_LINK_LIFETIME_MS));
      const email = await invoiceEmail(doc, { viewUrl: `${publicUrl.replace(/\/$/, '')}${SHARED_INVOICE_PATH}/${token}.html` });
      await mailer.send({ to: doc.customer.email, ...email, messageId: `<${invoiceId}@closeloop.invoice>` });
      faultPoint('after-invoice-email-sent'); // test-only crash point (CLOSELOOP_FAULT): sent, not yet marked sent
      await db('outbound_messages').where({ brand_id: brandId, dedupe_key: dedupeKey }).update({ status: 'sent' });
      return { sent: true };
    },
  };
}
