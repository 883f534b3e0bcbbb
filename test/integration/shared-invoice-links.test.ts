import assert from 'node:assert/strict';
import { signInvoiceLink } from '../../infra/signed-links';
import { seedPlans } from '../support/fixtures';
import { testSmtpSink } from '../support/global';
import { TEST_LINK_SECRET, uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/** The invoice email links to a signed URL the customer opens without an API key. */
describe('signed invoice links from the invoice email (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let brand: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brand = await stack.brand();
    await seedPlans(stack.db, brand.id);
  });
  after(async () => stack?.stop());

  it('opens the emailed link as HTML and PDF without a key, and refuses tampered and expired links', async () => {
    const id = uniqueId('cus');
    const signup = await stack.call('POST', '/v1/customers', { key: brand.key, body: { id, email: `${id}@example.com`, plan: 'pro', paymentMethod: 'tok_visa' } });
    assert.equal(signup.status, 201, signup.text);
    const invoice = await eventually(async () => stack.db('invoices').where({ brand_id: brand.id, customer_id: id }).first());
    const mail = await testSmtpSink().waitFor((m) => m.messageId.includes(invoice.id), 10_000);
    const link = /https?:\/\/\S+\/v1\/shared\/invoices\/[A-Za-z0-9_.-]+\.html/.exec(mail.text ?? '')?.[0];
    assert.ok(link, `the email links to a signed invoice page: ${mail.text}`);
    const path = new URL(link).pathname;

    const page = await stack.call('GET', path, { key: null });
    assert.equal(page.status, 200, page.text);
    assert.match(page.text, new RegExp(`${brand.id.toUpperCase()}-\\d{6}`));
    assert.match(page.text, /USD 49\.00/);
    const pdf = await fetch(`${stack.url}${path.replace(/\.html$/, '.pdf')}`);
    assert.equal(pdf.status, 200);
    assert.equal(pdf.headers.get('content-type'), 'application/pdf');

    const token = path.split('/').pop()!.replace(/\.html$/, '');
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA');
    assert.equal((await stack.call('GET', `/v1/shared/invoices/${tampered}.html`, { key: null })).status, 404);
    const otherSecret = signInvoiceLink('another-secret-0123456789abcdef-xyz', { brandId: brand.id, invoiceId: invoice.id }, new Date(Date.now() + 60_000));
    assert.equal((await stack.call('GET', `/v1/shared/invoices/${otherSecret}.html`, { key: null })).status, 404);
    const expired = signInvoiceLink(TEST_LINK_SECRET, { brandId: brand.id, invoiceId: invoice.id }, new Date(Date.now() - 1_000));
    const gone = await stack.call('GET', `/v1/shared/invoices/${expired}.html`, { key: null });
    assert.equal(gone.status, 410);
    assert.equal(gone.json.error.code, 'LINK_EXPIRED');
    const wrongInvoice = signInvoiceLink(TEST_LINK_SECRET, { brandId: brand.id, invoiceId: 'inv_00000000000000000000000000000000' }, new Date(Date.now() + 60_000));
    assert.equal((await stack.call('GET', `/v1/shared/invoices/${wrongInvoice}.html`, { key: null })).status, 404);
  });
});
