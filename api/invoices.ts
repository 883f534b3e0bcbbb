/**
 * Invoices and credit notes as a client app reads them: a customer's list, and each document as
 * JSON, HTML and PDF (the same InvoiceDocument behind all three). Finalized documents are never
 * edited; POST /v1/invoices/:id/credit-notes is how one is corrected.
 */
import { CreditNoteError, CreditNoteErrorTypes, invoiceCredits, InvoiceCredits, issueCreditNote } from '../data/credit-notes';
import { customerInvoices, invoiceCurrency, InvoiceListRow } from '../data/invoice-views';
import { loadInvoiceDocument } from '../data/invoices';
import { CUSTOMER_ID } from '../domain/ids';
import { invoiceNumber } from '../domain/invoice';
import type { InvoiceDocument } from '../domain/invoice-document';
import { formatMinor, money, parseAmount, toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { creditNoteInstructions } from '../presentment/format';
import { renderInvoiceHtml } from '../presentment/invoice-html';
import { renderInvoicePdf } from '../presentment/invoice-pdf';
import { ApiError, invalidFields } from './errors';
import { Api, ErrorSchema, z, MoneySchema } from './route';

export interface InvoiceRoutesDeps {
  db: Db;
}

export const INVOICE_ID = /^inv_[a-f0-9]{32}$/;

const Links = z.object({ self: z.string(), html: z.string(), pdf: z.string() }).openapi('InvoiceLinks');
const Kind = z.enum(['opening', 'period', 'final', 'credit_note']);
const Status = z.enum(['finalized', 'paid', 'void']);
const Period = z.object({ number: z.number().int().nullable(), start: z.string().nullable(), end: z.string().nullable() });

const InvoiceSummarySchema = z
  .object({
    id: z.string(),
    number: z.string().openapi({ example: 'DEMO-000042' }),
    kind: Kind,
    status: Status,
    period: Period,
    total: MoneySchema,
    amountDue: MoneySchema.openapi({ description: 'Negative on a credit note: what it took off the corrected invoice' }),
    issuedAt: z.string(),
    dueAt: z.string(),
    links: Links,
  })
  .openapi('InvoiceSummary');

const InvoiceLineSchema = z.object({
  position: z.number().int(),
  kind: z.enum(['recurring', 'usage', 'usage_adjustment', 'discount', 'proration', 'credit']),
  description: z.string(),
  metric: z.string().nullable(),
  quantity: z.string().nullable().openapi({ description: 'Exact decimal' }),
  unitPrice: z.string().nullable().openapi({ description: 'Exact decimal, may be finer than the minor unit' }),
  amountMinor: z.number().int(),
  amount: MoneySchema,
  periodStart: z.string().nullable(),
  periodEnd: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()),
});

const CreditNoteRef = z.object({ id: z.string(), number: z.string(), total: MoneySchema, issuedAt: z.string(), links: Links });

const InvoiceDocumentSchema = z
  .object({
    id: z.string(),
    number: z.string(),
    kind: Kind,
    status: Status,
    brand: z.object({ id: z.string(), name: z.string() }),
    customer: z.object({ id: z.string(), name: z.string().nullable(), email: z.string() }),
    currency: z.string(),
    issuedAt: z.string(),
    dueAt: z.string(),
    period: Period,
    lines: z.array(InvoiceLineSchema),
    subtotalMinor: z.number().int(),
    subtotal: MoneySchema,
    discountMinor: z.number().int(),
    discount: MoneySchema,
    taxMinor: z.number().int(),
    tax: MoneySchema,
    taxRate: z.string().openapi({ description: 'Percent as an exact decimal, e.g. "19"' }),
    taxInclusive: z.boolean(),
    creditAppliedMinor: z.number().int(),
    creditApplied: MoneySchema.openapi({ description: 'Customer credit used; negative on a credit note: the part returned to the credit balance' }),
    totalMinor: z.number().int(),
    total: MoneySchema,
    amountDueMinor: z.number().int(),
    amountDue: MoneySchema,
    paymentInstructions: z.string(),
    correctsInvoice: z
      .object({ id: z.string(), number: z.string(), links: Links })
      .nullable()
      .openapi({ description: 'On a credit note: the invoice it corrects' }),
    creditNotes: z.array(CreditNoteRef).openapi({ description: 'On an invoice: the credit notes issued against it, oldest first' }),
    creditable: MoneySchema.openapi({ description: 'On an invoice: what may still be credited' }),
    outstanding: MoneySchema.openapi({ description: 'On an invoice: what is still owed on it after credit notes; zero once paid' }),
    links: Links,
  })
  .openapi('InvoiceDocument');

const CustomerParams = z.strictObject({
  id: z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit'),
});
const InvoiceParams = z.strictObject({
  id: z.string().regex(INVOICE_ID, 'an invoice id: "inv_" and 32 lowercase hex digits').openapi({ example: 'inv_0123456789abcdef0123456789abcdef' }),
});

const CreditNoteHeaders = z.object({
  'idempotency-key': z
    .string({ error: 'required: a repeat with the same key returns the same credit note' })
    .min(1, 'must not be empty')
    .max(255, 'at most 255 characters')
    .openapi({ description: 'Required; a repeat with the same key returns the credit note it issued, and issues no other' }),
});

export const CreditNoteBody = z
  .strictObject({
    amount: z
      .string()
      .regex(/^\d{1,13}(\.\d{1,4})?$/, 'a positive decimal amount in the invoice currency, such as "12.34"')
      .refine((a) => /[1-9]/.test(a), 'must be greater than zero')
      .optional()
      .openapi({ description: "Tax included, in the invoice's currency; omit to credit everything still creditable", example: '12.34' }),
    reason: z.string().trim().min(1).max(500).openapi({ description: "Shown to the customer as the credit note's line", example: 'Service outage on 3 March' }),
  })
  .openapi('CreateCreditNote');

const links = (id: string) => ({ self: `/v1/invoices/${id}`, html: `/v1/invoices/${id}.html`, pdf: `/v1/invoices/${id}.pdf` });

function summaryView(brandId: string, r: InvoiceListRow) {
  return {
    id: r.id,
    number: invoiceNumber(brandId, r.number),
    kind: r.kind,
    status: r.status,
    period: { number: r.periodNumber, start: r.periodStart, end: r.periodEnd },
    total: toMoneyJson(money(r.totalMinor, r.currency)),
    amountDue: toMoneyJson(money(r.amountDueMinor, r.currency)),
    issuedAt: r.issuedAt,
    dueAt: r.dueAt,
    links: links(r.id),
  };
}

function documentView(doc: InvoiceDocument, credits: InvoiceCredits) {
  const m = (minor: number) => toMoneyJson(money(minor, doc.currency));
  return {
    ...doc,
    lines: doc.lines.map((l) => ({ ...l, amount: m(l.amountMinor) })),
    subtotal: m(doc.subtotalMinor),
    discount: m(doc.discountMinor),
    tax: m(doc.taxMinor),
    creditApplied: m(doc.creditAppliedMinor),
    total: m(doc.totalMinor),
    amountDue: m(doc.amountDueMinor),
    correctsInvoice: credits.corrects ? { ...credits.corrects, links: links(credits.corrects.id) } : null,
    creditNotes: credits.creditNotes.map((n) => ({ id: n.id, number: n.number, total: m(n.totalMinor), issuedAt: n.issuedAt, links: links(n.id) })),
    creditable: m(credits.creditableMinor),
    outstanding: m(credits.outstandingMinor),
    links: links(doc.id),
  };
}

const invoiceNotFound = (id: string) => new ApiError(404, 'NOT_FOUND', `invoice "${id}" not found`, [{ field: 'params.id', message: 'no invoice with this id' }]);

function creditNoteProblem(err: CreditNoteError): ApiError {
  switch (err.type) {
    case CreditNoteErrorTypes.INVOICE_NOT_FOUND:
      return new ApiError(404, 'NOT_FOUND', err.message, [{ field: 'params.id', message: 'no invoice with this id' }]);
    case CreditNoteErrorTypes.NOT_CREDITABLE:
      return new ApiError(422, err.type, err.message, [{ field: 'params.id', message: err.message }]);
    case CreditNoteErrorTypes.EXCEEDS_CREDITABLE: {
      const left = err.currency !== undefined && err.creditableMinor !== undefined ? `${err.currency} ${formatMinor(BigInt(err.creditableMinor), err.currency)}` : 'nothing';
      return new ApiError(422, err.type, `the credit exceeds what is still creditable on this invoice (${left})`, [
        { field: 'body.amount', message: `at most ${left} can still be credited` },
      ]);
    }
    case CreditNoteErrorTypes.IDEMPOTENCY_KEY_REUSED:
      return new ApiError(409, err.type, err.message, [{ field: 'header.idempotency-key', message: 'already used for a different credit note' }]);
  }
}

export function registerInvoiceRoutes(api: Api, deps: InvoiceRoutesDeps): void {
  const { db } = deps;

  /** The document and its credit references; a credit note explains itself instead of asking for payment. */
  async function loadDocument(brandId: string, invoiceId: string): Promise<{ doc: InvoiceDocument; credits: InvoiceCredits }> {
    const [doc, credits] = await Promise.all([loadInvoiceDocument(db, brandId, invoiceId), invoiceCredits(db, brandId, invoiceId)]);
    if (!doc || !credits) throw invoiceNotFound(invoiceId);
    if (doc.kind !== 'credit_note') return { doc, credits };
    return { doc: { ...doc, paymentInstructions: creditNoteInstructions(doc, credits.corrects?.number ?? null) }, credits };
  }

  api.route({
    method: 'get',
    path: '/v1/customers/:id/invoices',
    summary: "The customer's invoices and credit notes, newest first",
    tag: 'invoices',
    params: CustomerParams,
    responses: {
      200: { description: 'The invoices, newest first', schema: z.object({ data: z.array(InvoiceSummarySchema) }) },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const rows = await customerInvoices(db, brand.id, params.id);
      if (!rows) throw new ApiError(404, 'NOT_FOUND', `customer "${params.id}" not found`, [{ field: 'params.id', message: 'no customer with this id' }]);
      return { status: 200, body: { data: rows.map((r) => summaryView(brand.id, r)) } };
    },
  });

  // The .html and .pdf routes come first: "/v1/invoices/:id" would otherwise take "inv_….pdf" as an id.
  api.route({
    method: 'get',
    path: '/v1/invoices/:id.html',
    summary: 'The invoice or credit note as a self-contained HTML page (prints on A4)',
    tag: 'invoices',
    params: InvoiceParams,
    responses: {
      200: { description: 'The page', contentType: 'text/html', schema: z.string() },
      404: { description: 'No such invoice for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand, res }) => {
      const page = renderInvoiceHtml((await loadDocument(brand.id, params.id)).doc);
      // The page is rendered customer data: nothing in it may load or run anything.
      res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'");
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Cache-Control', 'private, no-cache');
      res.status(200).type('html').send(page);
    },
  });

  api.route({
    method: 'get',
    path: '/v1/invoices/:id.pdf',
    summary: 'The invoice or credit note as an A4 PDF, shown inline',
    tag: 'invoices',
    params: InvoiceParams,
    responses: {
      200: { description: 'The PDF', contentType: 'application/pdf', schema: z.string().openapi({ format: 'binary' }) },
      404: { description: 'No such invoice for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand, res }) => {
      const { doc } = await loadDocument(brand.id, params.id);
      const pdf = await renderInvoicePdf(doc);
      // Invoice numbers are "<BRAND>-000042": letters, digits and "-", safe in a quoted filename.
      res.setHeader('Content-Disposition', `inline; filename="${doc.number}.pdf"`);
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Cache-Control', 'private, no-cache');
      res.status(200).type('application/pdf').send(pdf);
    },
  });

  api.route({
    method: 'get',
    path: '/v1/invoices/:id',
    summary: 'The invoice or credit note as JSON: every line and total in minor units and as Money, with its credit notes or the invoice it corrects',
    tag: 'invoices',
    params: InvoiceParams,
    responses: {
      200: { description: 'The document', schema: InvoiceDocumentSchema },
      404: { description: 'No such invoice for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const { doc, credits } = await loadDocument(brand.id, params.id);
      return { status: 200, body: documentView(doc, credits) };
    },
  });

  api.route({
    method: 'post',
    path: '/v1/invoices/:id/credit-notes',
    summary:
      'Correct a finalized invoice with a credit note (its own number, negative total, tax credited in proportion). The part still owed is taken off the invoice; the part already paid goes to the customer’s credit balance for the next invoice. Idempotent by Idempotency-Key',
    tag: 'invoices',
    params: InvoiceParams,
    headers: CreditNoteHeaders,
    body: CreditNoteBody,
    responses: {
      201: { description: 'The credit note was issued', schema: InvoiceDocumentSchema },
      200: { description: 'This Idempotency-Key issued it before: the same credit note, nothing new', schema: InvoiceDocumentSchema },
      404: { description: 'No such invoice for this brand', schema: ErrorSchema },
      409: { description: 'IDEMPOTENCY_KEY_REUSED: the key already issued a different credit note', schema: ErrorSchema },
      422: { description: 'EXCEEDS_CREDITABLE (body.amount) or NOT_CREDITABLE (a credit note or void invoice)', schema: ErrorSchema },
    },
    handler: async ({ params, body, headers, brand }) => {
      const currency = await invoiceCurrency(db, brand.id, params.id);
      if (!currency) throw invoiceNotFound(params.id);
      let amountMinor: number | 'full' = 'full';
      if (body.amount !== undefined) {
        try {
          amountMinor = Number(parseAmount(body.amount, currency).minor);
        } catch (err) {
          throw invalidFields([{ field: 'body.amount', message: (err as Error).message }]);
        }
      }
      let issued;
      try {
        issued = await issueCreditNote(db, {
          brandId: brand.id,
          invoiceId: params.id,
          amountMinor,
          reason: body.reason,
          idempotencyKey: headers['idempotency-key'],
        });
      } catch (err) {
        if (err instanceof CreditNoteError) throw creditNoteProblem(err);
        throw err;
      }
      const { doc, credits } = await loadDocument(brand.id, issued.creditNoteId);
      return { status: issued.created ? 201 : 200, body: documentView(doc, credits), headers: { Location: `/v1/invoices/${issued.creditNoteId}` } };
    },
  });
}
