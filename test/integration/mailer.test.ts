/**
 * infra/mailer.ts against infra/smtp-sink.ts: real SMTP over loopback, HTML and a PDF
 * attachment, read back parsed and from the .eml files the sink writes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMailer, Mailer, messageIdHeader } from '../../infra/mailer';
import { SmtpSink, startSmtpSink } from '../../infra/smtp-sink';
import { invoiceEmail } from '../../presentment/invoice-email';
import type { InvoiceDocument } from '../../domain/invoice-document';

const invoice: InvoiceDocument = {
  id: 'inv_mailer_1',
  number: 'DEMO-000042',
  kind: 'period',
  status: 'finalized',
  brand: { id: 'demo', name: 'Demo Co' },
  customer: { id: 'cus_1', name: 'Ada Lovelace', email: 'ada@example.com' },
  currency: 'USD',
  issuedAt: '2026-12-01T00:00:00.000Z',
  dueAt: '2026-12-15T00:00:00.000Z',
  period: { number: 1, start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' },
  lines: [
    {
      position: 1,
      kind: 'recurring',
      description: 'Starter plan',
      metric: null,
      quantity: '1',
      unitPrice: '12.34',
      amountMinor: 1234,
      periodStart: null,
      periodEnd: null,
      detail: {},
    },
  ],
  subtotalMinor: 1234,
  discountMinor: 0,
  taxMinor: 0,
  taxRate: '0',
  taxInclusive: false,
  creditAppliedMinor: 0,
  totalMinor: 1234,
  amountDueMinor: 1234,
  paymentInstructions: 'Your card on file will be charged on the due date.',
};

describe('infra/mailer over the SMTP sink', function () {
  this.timeout(30_000);
  let sink: SmtpSink;
  let mailer: Mailer;
  let dir: string;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-mail-'));
    sink = await startSmtpSink({ port: 0, dir });
    mailer = createMailer({ host: sink.host, port: sink.port, from: 'billing@closeloop.local' });
  });

  after(async () => {
    mailer?.close();
    await sink?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('delivers the invoice email with its HTML and PDF attachment', async () => {
    const email = await invoiceEmail(invoice, { viewUrl: 'http://127.0.0.1:3000/v1/invoices/inv_mailer_1.html' });
    const sent = await mailer.send({ to: 'ada@example.com', ...email });
    const got = await sink.waitFor((m) => m.messageId === sent.messageId, 10_000);

    assert.equal(got.subject, 'Invoice DEMO-000042 from Demo Co: USD 12.34 due 15 December 2026');
    assert.deepEqual(got.to, ['ada@example.com']);
    assert.equal(got.from, 'billing@closeloop.local');
    assert.deepEqual(got.envelope, { from: 'billing@closeloop.local', to: ['ada@example.com'] });
    assert.deepEqual(got.attachments, ['DEMO-000042.pdf']);
    assert.ok(got.html.includes('View invoice'));
    assert.ok(got.text.includes('USD 12.34'));
    assert.ok(got.file && fs.readFileSync(got.file, 'utf8').includes('Subject: Invoice DEMO-000042'), 'an .eml copy on disk');
  });

  it('sends a retried message again under the same Message-ID', async () => {
    const mail = { to: 'ada@example.com', subject: 'Payment failed', text: 'We could not charge your card.', messageId: 'invoice-inv_mailer_1-payment-failed-1' };
    const first = await mailer.send(mail);
    const second = await mailer.send(mail);
    assert.equal(first.messageId, '<invoice-inv_mailer_1-payment-failed-1@closeloop.local>');
    assert.equal(second.messageId, first.messageId);

    // The sink keeps a message before it answers 250, so both are there once send() resolves.
    const copies = sink.messages().filter((m) => m.subject === 'Payment failed');
    assert.equal(copies.length, 2, 'both sends arrive: deduplication is the caller\'s job');
    assert.deepEqual(
      copies.map((m) => m.messageId),
      [first.messageId, first.messageId],
    );
    assert.equal(new Set(copies.map((m) => m.file)).size, 2, 'each copy has its own .eml file');
  });

  it('keeps a caller\'s full Message-ID as given', () => {
    assert.equal(messageIdHeader('<inv_1@closeloop.invoice>', 'billing@closeloop.local'), '<inv_1@closeloop.invoice>');
    assert.equal(messageIdHeader('inv_1@closeloop.invoice', 'billing@closeloop.local'), '<inv_1@closeloop.invoice>');
    assert.equal(messageIdHeader('invoice ready:inv 1', 'Demo <billing@demo.example>'), '<invoice-ready-inv-1@demo.example>');
  });

  it('times out waiting for a message that never comes, saying what did arrive', async () => {
    await assert.rejects(sink.waitFor((m) => m.subject === 'never sent', 200), /no matching message within 200 ms/);
  });
});
