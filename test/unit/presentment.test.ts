/**
 * presentment/: the HTML page and the PDF of one realistic invoice (recurring fee, usage priced
 * at 0.0004 with tiers, discount, 19 % tax on top, credit), read back as a customer would.
 */
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import type { InvoiceDocument } from '../../domain/invoice-document';
import { formatMoney, formatPeriod, formatRate, groupThousands } from '../../presentment/format';
import { invoiceEmail } from '../../presentment/invoice-email';
import { escapeHtml, renderInvoiceHtml } from '../../presentment/invoice-html';
import { renderInvoicePdf, toWinAnsi } from '../../presentment/invoice-pdf';

/**
 * A November invoice: Pro plan in advance for December, API calls in arrears for November.
 * 1,250,000 calls: 100,000 included, 900,000 at 0.0004, 250,000 at 0.0002 = 360.00 + 50.00.
 * Subtotal 49.00 + 410.00 = 459.00; 10 % discount 45.90; tax 19 % of 413.10 = 78.49;
 * total 491.59; credit 25.00; due 466.59.
 */
function sampleInvoice(overrides: Partial<InvoiceDocument> = {}): InvoiceDocument {
  return {
    id: 'inv_01JD8ZQ4W6K3',
    number: 'DEMO-000042',
    kind: 'period',
    status: 'finalized',
    brand: { id: 'demo', name: 'Demo Co' },
    customer: { id: 'cus_1', name: 'Ada <script>alert("x")</script> & Co', email: 'ada@example.com' },
    currency: 'USD',
    issuedAt: '2026-12-01T00:00:00.000Z',
    dueAt: '2026-12-15T00:00:00.000Z',
    period: { number: 2, start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' },
    lines: [
      {
        position: 1,
        kind: 'recurring',
        description: 'Pro plan (monthly, in advance)',
        metric: null,
        quantity: '1',
        unitPrice: '49.00',
        amountMinor: 4900,
        periodStart: '2026-12-01T00:00:00.000Z',
        periodEnd: '2027-01-01T00:00:00.000Z',
        detail: {},
      },
      {
        position: 2,
        kind: 'usage',
        description: 'API calls',
        metric: 'api_calls',
        quantity: '1250000',
        unitPrice: null,
        amountMinor: 41000,
        periodStart: '2026-11-01T00:00:00.000Z',
        periodEnd: '2026-12-01T00:00:00.000Z',
        detail: {
          model: 'graduated',
          breakdown: [
            { description: 'First 100,000 calls (included)', quantity: '100000', unitPrice: '0', amountExact: '0' },
            { description: '100,001 – 1,000,000', quantity: '900000', unitPrice: '0.0004', amountExact: '360.0000' },
            { description: 'Over 1,000,000', quantity: '250000', unitPrice: '0.0002', amountExact: '50.0000' },
          ],
        },
      },
      {
        position: 3,
        kind: 'discount',
        description: 'Launch discount (10%)',
        metric: null,
        quantity: null,
        unitPrice: null,
        amountMinor: -4590,
        periodStart: null,
        periodEnd: null,
        detail: {},
      },
    ],
    subtotalMinor: 45900,
    discountMinor: 4590,
    taxMinor: 7849,
    taxRate: '19.0000',
    taxInclusive: false,
    creditAppliedMinor: 2500,
    totalMinor: 49159,
    amountDueMinor: 46659,
    paymentInstructions:
      'Your card on file (Visa ending 4242) will be charged on the due date.\nTo pay by bank transfer instead, use reference DEMO-000042.',
    ...overrides,
  };
}

/** The text a PDF viewer would show: every content stream inflated, hex strings of Tj/TJ decoded. */
function pdfText(pdf: Buffer): string {
  const raw = pdf.toString('latin1');
  const out: string[] = [];
  const streams = /(?<!end)stream\r?\n/g;
  let m: RegExpExecArray | null;
  while ((m = streams.exec(raw)) !== null) {
    const start = m.index + m[0].length;
    const end = raw.indexOf('endstream', start);
    if (end < 0) break;
    const body = pdf.subarray(start, end);
    let content: string;
    try {
      content = zlib.inflateSync(body).toString('latin1');
    } catch {
      content = body.toString('latin1');
    }
    for (const block of content.match(/BT[\s\S]*?ET/g) ?? []) {
      const shown = [...block.matchAll(/\[((?:<[0-9a-fA-F]*>|[\s\d.-])*)\]\s*TJ|<([0-9a-fA-F]*)>\s*Tj/g)]
        .map((t) => (t[1] ?? `<${t[2]}>`).match(/<([0-9a-fA-F]*)>/g) ?? [])
        .flat()
        .map((hex) => Buffer.from(hex.slice(1, -1), 'hex').toString('latin1'))
        .join('');
      out.push(shown);
    }
    streams.lastIndex = end + 'endstream'.length;
  }
  return out.join('\n');
}

describe('presentment', () => {
  describe('formatting', () => {
    it('groups thousands on the string, keeping every decimal', () => {
      assert.equal(groupThousands('1234567.0004'), '1,234,567.0004');
      assert.equal(groupThousands('999'), '999');
      assert.equal(groupThousands('-1000'), '-1,000');
    });

    it('formats minor units with the currency code, negatives and zero-decimal currencies included', () => {
      assert.equal(formatMoney(123456, 'USD'), 'USD 1,234.56');
      assert.equal(formatMoney(-4590, 'USD'), '-USD 45.90');
      assert.equal(formatMoney(5, 'USD'), 'USD 0.05');
      assert.equal(formatMoney(1234567, 'JPY'), 'JPY 1,234,567');
      assert.equal(formatMoney(1234567n, 'KWD'), 'KWD 1,234.567');
      assert.equal(formatMoney(900719925474099123n, 'USD'), 'USD 9,007,199,254,740,991.23');
    });

    it('writes tax rates as people do', () => {
      assert.equal(formatRate('19.0000'), '19');
      assert.equal(formatRate('7.5000'), '7.5');
    });

    it('shows a whole-day period with its last day and a minute period with UTC times', () => {
      assert.equal(formatPeriod('2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z'), '1 November 2026 – 30 November 2026');
      assert.equal(formatPeriod('2026-11-25T10:00:00Z', '2026-11-25T10:01:00Z'), '25 November 2026, 10:00 – 10:01 UTC');
      assert.equal(formatPeriod(null, null), undefined);
    });
  });

  describe('renderInvoiceHtml', () => {
    const doc = sampleInvoice();
    const page = renderInvoiceHtml(doc);

    it('is one self-contained, printable page', () => {
      assert.match(page, /^<!DOCTYPE html>/);
      assert.match(page, /@media print/);
      assert.doesNotMatch(page, /<link\b|<script\b|<img\b|src=|url\(/i);
    });

    it('names the invoice, its dates, period and the customer', () => {
      assert.match(page, /<h1>Invoice DEMO-000042<\/h1>/);
      assert.ok(page.includes('1 December 2026'), 'issue date');
      assert.ok(page.includes('15 December 2026'), 'due date');
      assert.ok(page.includes('1 November 2026 – 30 November 2026'), 'billing period');
      assert.ok(page.includes('ada@example.com'));
      assert.ok(page.includes('cus_1'));
      assert.ok(page.includes('Demo Co'));
    });

    it('escapes the customer name: the <script> in it is shown, never run', () => {
      assert.ok(page.includes(escapeHtml(doc.customer.name!)));
      assert.ok(page.includes('Ada &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co'));
      assert.ok(!page.includes('<script'), 'no raw <script> anywhere');
    });

    it('lists every line with its quantity, exact unit price and amount', () => {
      for (const line of doc.lines) assert.ok(page.includes(line.description), line.description);
      assert.ok(page.includes('1,250,000'));
      assert.ok(page.includes('USD 49.00'));
      assert.ok(page.includes('USD 410.00'));
      assert.ok(page.includes('-USD 45.90'));
    });

    it('shows the usage tiers at full precision, 0.0004 as given', () => {
      assert.ok(page.includes('Usage detail'));
      assert.ok(page.includes('USD 0.0004'));
      assert.ok(page.includes('USD 360.0000'));
      assert.ok(page.includes('900,000'));
      assert.ok(page.includes('Over 1,000,000'));
    });

    it('adds up: subtotal, discount, tax 19 % on top, total, credit and amount due', () => {
      const row = (label: string, amount: string) =>
        new RegExp(`<td>${label.replace(/[()%]/g, '\\$&')}</td><td class="num">${amount}</td>`);
      assert.match(page, row('Subtotal', 'USD 459.00'));
      assert.match(page, row('Discount', '-USD 45.90'));
      assert.match(page, row('Tax (19%)', 'USD 78.49'));
      assert.match(page, row('Total', 'USD 491.59'));
      assert.match(page, row('Credit applied', '-USD 25.00'));
      assert.match(page, row('Amount due', 'USD 466.59'));
      assert.ok(page.includes('Prices exclude tax'));
    });

    it('says how to pay', () => {
      assert.ok(page.includes('How to pay'));
      assert.ok(page.includes('Visa ending 4242'));
    });

    it('words inclusive tax as included, and marks a paid credit note', () => {
      const other = renderInvoiceHtml(sampleInvoice({ taxInclusive: true, kind: 'credit_note', status: 'paid' }));
      assert.ok(other.includes('Tax included (19%)'));
      assert.ok(other.includes('Prices include tax'));
      assert.ok(other.includes('Credit note DEMO-000042'));
      assert.match(other, /class="status paid">Paid</);
    });
  });

  describe('renderInvoicePdf', function () {
    this.timeout(20_000);
    const doc = sampleInvoice();

    it('is an A4 PDF whose text holds the number, every line, the total and the amount due', async () => {
      const pdf = await renderInvoicePdf(doc);
      assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
      assert.ok(pdf.length > 1024, `only ${pdf.length} bytes`);
      assert.match(pdf.toString('latin1'), /\/MediaBox \[0 0 595\.28 841\.89\]/);
      const text = pdfText(pdf);
      assert.ok(text.includes('Invoice DEMO-000042'), text);
      for (const line of doc.lines) assert.ok(text.includes(line.description), line.description);
      assert.ok(text.includes('USD 491.59'), 'total');
      assert.ok(text.includes('USD 466.59'), 'amount due');
      assert.ok(text.includes('USD 0.0004'), 'micro unit price');
      assert.ok(text.includes(toWinAnsi(doc.customer.name!)), 'customer name as text');
    });

    it('renders the same invoice to the same bytes, dated by the invoice', async () => {
      const [a, b] = await Promise.all([renderInvoicePdf(doc), renderInvoicePdf(doc)]);
      assert.ok(a.equals(b));
      assert.ok(a.toString('latin1').includes('(D:20261201000000Z)'), 'CreationDate and ModDate are the issue date');
    });

    it('breaks a long invoice across pages, numbering them', async () => {
      const many = Array.from({ length: 80 }, (_, i) => ({
        ...doc.lines[0]!,
        position: i + 1,
        description: `Seat ${i + 1}: a long description that wraps onto a second line in the description column`,
      }));
      const pdf = await renderInvoicePdf(sampleInvoice({ lines: [...many, doc.lines[1]!] }));
      const pages = pdf.toString('latin1').match(/\/Type \/Page\b/g) ?? [];
      assert.ok(pages.length >= 3, `${pages.length} page(s)`);
      const text = pdfText(pdf);
      assert.ok(text.includes(`Page 1 of ${pages.length}`));
      assert.ok(text.includes(`Seat 80:`));
      assert.ok(text.includes('USD 466.59'));
    });

    it('draws names outside the standard fonts as readable text, not garbage', () => {
      assert.equal(toWinAnsi('Zoë Ødegård — €5'), 'Zoë Ødegård — €5');
      assert.equal(toWinAnsi('Łukasz Wałęsa'), '?ukasz Wa?esa');
      assert.equal(toWinAnsi('Dvořák 山田'), 'Dvorák ??');
    });
  });

  describe('invoiceEmail', function () {
    this.timeout(20_000);

    it('says what is due by when, links the invoice page and attaches the PDF', async () => {
      const doc = sampleInvoice();
      const email = await invoiceEmail(doc, { viewUrl: 'https://billing.example.com/v1/invoices/inv_01JD8ZQ4W6K3.html' });
      assert.equal(email.subject, 'Invoice DEMO-000042 from Demo Co: USD 466.59 due 15 December 2026');
      assert.ok(email.text.includes('USD 466.59'));
      assert.ok(email.text.includes('https://billing.example.com/v1/invoices/inv_01JD8ZQ4W6K3.html'));
      assert.ok(email.html.includes('href="https://billing.example.com/v1/invoices/inv_01JD8ZQ4W6K3.html"'));
      assert.ok(!email.html.includes('<script'));
      assert.equal(email.attachments.length, 1);
      assert.equal(email.attachments[0]!.filename, 'DEMO-000042.pdf');
      assert.equal(email.attachments[0]!.content.subarray(0, 5).toString('latin1'), '%PDF-');
    });

    it('refuses a link that is not http(s)', async () => {
      await assert.rejects(invoiceEmail(sampleInvoice(), { viewUrl: 'javascript:alert(1)' }), RangeError);
    });

    it('keeps customer line breaks out of the subject', async () => {
      const email = await invoiceEmail(sampleInvoice({ brand: { id: 'x', name: 'Evil\r\nBcc: all@example.com' } }), { viewUrl: 'https://x.example/i' });
      assert.ok(!/[\r\n]/.test(email.subject));
    });
  });
});
