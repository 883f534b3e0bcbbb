import assert from 'node:assert/strict';
import { WEBHOOK_PATH } from '../../api/webhooks';
import { seedPlans } from '../support/fixtures';
import { testSandboxGateway } from '../support/global';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Refunds through the API, the real sandbox gateway and the ledger: partial, then the full
 * remainder; never more than was paid; a repeated Idempotency-Key refunds once; the invoice
 * stays paid and the refund is booked as contra revenue (the root hook checks the ledger).
 */
describe('refunds (integration, dev server)', function () {
  this.timeout(90_000);
  let stack: Stack;
  let brand: { id: string; key: string };
  let other: { id: string; key: string };
  let customerId: string;
  let payment: { id: string; gatewayPaymentId: string; invoiceId: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brand = await stack.brand();
    other = await stack.brand();
    await seedPlans(stack.db, brand.id);
    testSandboxGateway().setWebhookUrl(`${stack.url}${WEBHOOK_PATH}`);
    customerId = uniqueId('cus');
    const signup = await stack.call('POST', '/v1/customers', {
      key: brand.key,
      body: { id: customerId, email: 'refunds@example.com', plan: 'pro', paymentMethod: 'tok_visa' },
    });
    assert.equal(signup.status, 201, signup.text);
    payment = await eventually(async () => {
      const listed = await stack.call('GET', `/v1/customers/${customerId}/payments`, { key: brand.key });
      return listed.json?.data?.find((p: any) => p.status === 'succeeded');
    });
  });

  after(async () => {
    testSandboxGateway().setWebhookUrl(undefined);
    await stack?.stop();
  });

  const refund = (body: unknown, key: string | undefined, apiKey = brand.key, paymentId = payment.id) =>
    stack.call('POST', `/v1/payments/${paymentId}/refunds`, { key: apiKey, body, headers: key === undefined ? {} : { 'Idempotency-Key': key } });
  const atGateway = () => testSandboxGateway().charges().find((c) => c.id === payment.gatewayPaymentId)!;
  const refundTransactions = (refundId: string) => stack.db('ledger_transactions').where({ brand_id: brand.id, kind: 'refund', document_id: refundId });

  it('lists the customer payment with its amount, and 404s another brand', async () => {
    const listed = await stack.call('GET', `/v1/customers/${customerId}/payments`, { key: brand.key });
    assert.equal(listed.status, 200);
    const p = listed.json.data[0];
    assert.deepEqual(p.amount, { amount: '49.00', currency: 'USD', minor: 4900 });
    assert.equal(p.refunded.minor, 0);
    assert.equal((await stack.call('GET', `/v1/customers/${customerId}/payments`, { key: other.key })).status, 404);
  });

  it('refuses a request without an Idempotency-Key, naming the header', async () => {
    const res = await refund({ amount: '1.00', reason: 'goodwill' }, undefined);
    assert.equal(res.status, 400);
    assert.ok(res.json.error.details.some((d: any) => d.field === 'header.idempotency-key'), res.text);
  });

  it('refuses malformed amounts and unknown fields, naming them', async () => {
    const bad = await refund({ amount: '1.234', reason: 'goodwill' }, uniqueId('k'));
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details[0].field, 'body.amount');
    const zero = await refund({ amount: '0.00', reason: 'goodwill' }, uniqueId('k'));
    assert.equal(zero.status, 400);
    const extra = await refund({ reason: 'goodwill', currency: 'USD' }, uniqueId('k'));
    assert.equal(extra.status, 400);
    assert.equal(extra.json.error.details[0].field, 'body.currency');
    assert.equal(atGateway().amount_refunded, 0);
  });

  it("answers 404 to another brand's key", async () => {
    const res = await refund({ amount: '1.00', reason: 'goodwill' }, uniqueId('k'), other.key);
    assert.equal(res.status, 404);
    assert.equal(atGateway().amount_refunded, 0);
  });

  it('refunds part of a payment once, however often the same key is sent', async () => {
    const key = uniqueId('k');
    const first = await refund({ amount: '10.00', reason: 'outage credit' }, key);
    assert.equal(first.status, 201, first.text);
    assert.equal(first.json.status, 'succeeded');
    assert.deepEqual(first.json.amount, { amount: '10.00', currency: 'USD', minor: 1000 });
    const again = await refund({ amount: '10.00', reason: 'outage credit' }, key);
    assert.equal(again.status, 200);
    assert.equal(again.json.id, first.json.id);
    assert.equal(atGateway().amount_refunded, 1000);
    assert.equal(atGateway().refunds.length, 1);
    assert.equal((await refundTransactions(first.json.id)).length, 1);
    const reused = await refund({ amount: '11.00', reason: 'outage credit' }, key);
    assert.equal(reused.status, 409);
    assert.equal(reused.json.error.details[0].field, 'header.idempotency-key');
    // The invoice is not re-opened: it was paid, and stays paid.
    assert.equal((await stack.db('invoices').where({ id: payment.invoiceId }).first()).status, 'paid');
    // The gateway's refund.succeeded webhook finds the refund already booked.
    await eventually(async () => {
      const rows = await stack.db('webhook_events').where({ type: 'refund.succeeded' }).whereRaw(`payload->>'refundId' = ?`, [first.json.gatewayRefundId]);
      return rows[0]?.outcome === 'refund_already_succeeded';
    });
  });

  it('refuses a refund of more than is left, naming the amount', async () => {
    const res = await refund({ amount: '40.00', reason: 'too much' }, uniqueId('k'));
    assert.equal(res.status, 422, res.text);
    assert.equal(res.json.error.code, 'EXCEEDS_REFUNDABLE');
    assert.equal(res.json.error.details[0].field, 'body.amount');
    assert.equal(res.json.error.details[0].refundable.minor, 3900);
    assert.equal(atGateway().amount_refunded, 1000);
  });

  it('refunds the full remainder when no amount is given, and then nothing more', async () => {
    const res = await refund({ reason: 'cancelled' }, uniqueId('k'));
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.amount.minor, 3900);
    assert.equal(atGateway().amount_refunded, 4900);
    const entries = await stack
      .db('ledger_entries as e')
      .join('ledger_transactions as t', 't.id', 'e.transaction_id')
      .where({ 't.kind': 'refund', 't.document_id': res.json.id })
      .select('e.account', 'e.amount_minor');
    assert.deepEqual(
      entries.map((e) => [e.account, Number(e.amount_minor)]).sort(),
      [
        ['gateway_clearing', -3900],
        ['revenue_refunds', 3900],
      ],
    );
    const more = await refund({ reason: 'again' }, uniqueId('k'));
    assert.equal(more.status, 422);
    assert.equal(more.json.error.details[0].field, 'body.amount');
    const listed = await stack.call('GET', `/v1/customers/${customerId}/payments`, { key: brand.key });
    assert.equal(listed.json.data.find((p: any) => p.id === payment.id).refunded.minor, 4900);
  });
});
