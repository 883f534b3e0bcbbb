import assert from 'node:assert/strict';
import { seedPlans } from '../support/fixtures';
import { testSmtpSink } from '../support/global';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * A whole billing period in real time on the dev server: a sandbox brand bills every minute, so
 * a client's usage, the period close, the invoice and its email all happen within the test.
 */
describe('billing a period in real time (integration, dev server)', function () {
  this.timeout(150_000);
  let stack: Stack;
  let brand: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brand = await stack.brand();
    await seedPlans(stack.db, brand.id);
    await stack.db('plans').insert({
      brand_id: brand.id,
      code: 'metered-minute',
      version: 1,
      name: 'Metered (per minute)',
      currency: 'USD',
      recurring_fee_minor: 100,
      cost_to_serve_minor: 10,
      billing_period: 'PT1M',
      entitlements: JSON.stringify({ features: ['api'], quotas: {} }),
      usage_components: JSON.stringify([{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 0 }]),
    });
  });

  after(async () => {
    await stack?.stop();
  });

  it('bills the same usage batch, posted twice, once', async () => {
    const id = uniqueId('cus');
    const signup = await stack.call('POST', '/v1/customers', {
      key: brand.key,
      body: { id, email: 'meter@example.com', plan: 'metered-minute', paymentMethod: 'tok_visa' },
    });
    assert.equal(signup.status, 201, signup.text);
    const now = new Date().toISOString();
    const events = Array.from({ length: 2_500 }, (_, i) => ({ id: `call-${i}`, metric: 'api_calls', quantity: 1, timestamp: now }));
    const first = await stack.call('POST', `/v1/customers/${id}/usage`, { key: brand.key, body: { events } });
    assert.equal(first.status, 202, first.text);
    assert.equal(first.json.accepted, 2_500);
    const replay = await stack.call('POST', `/v1/customers/${id}/usage`, { key: brand.key, body: { events } });
    assert.equal(replay.status, 202);
    assert.deepEqual([replay.json.accepted, replay.json.duplicates], [0, 2_500]);

    // The period closes within a minute of sign-up; its invoice bills 2,500 calls, not 5,000.
    const invoice = await eventually(
      async () => stack.db('invoices').where({ brand_id: brand.id, customer_id: id, billing_key: 'period:1' }).first(),
      110_000,
    );
    const lines = await stack.db('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
    const usage = lines.find((l) => l.kind === 'usage');
    assert.equal(Number(usage.quantity), 2_500);
    assert.equal(Number(usage.amount_minor), 100); // 2,500 × 0.0004 = 1.00
    assert.equal(Number(invoice.total_minor), 200); // usage + the next minute's fee
    assert.equal(Number((await stack.db('usage_events').where({ brand_id: brand.id, customer_id: id }).count({ n: '*' }))[0]!.n), 2_500);

    await eventually(async () => (await stack.call('GET', `/v1/customers/${id}`, { key: brand.key })).json.currentPeriod.number >= 2, 10_000);
    await testSmtpSink().waitFor((m) => m.messageId.includes(invoice.id), 10_000);
  });
});
