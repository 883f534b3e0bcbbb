import assert from 'node:assert/strict';
import { seedPlans } from '../support/fixtures';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/** Plan changes and cancellation as a client app drives them: real HTTP, the dev server, PostgreSQL. */
describe('plan changes and cancellation over HTTP (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    a = await stack.brand();
    b = await stack.brand();
    await seedPlans(stack.db, a.id);
    await seedPlans(stack.db, b.id);
  });
  after(async () => {
    await stack?.stop();
  });

  const post = (path: string, body: unknown, key: string | null = a.key, headers: Record<string, string> = {}) => stack.call('POST', path, { key, body, headers });
  const get = (path: string) => stack.call('GET', path, { key: a.key });

  async function signUp(plan: string): Promise<string> {
    const id = uniqueId('cus');
    const res = await post('/v1/customers', { id, email: 'plan@example.com', plan, paymentMethod: 'tok_visa' });
    assert.equal(res.status, 201, res.text);
    return id;
  }

  it('upgrades now and answers with the proration, its invoice and the new entitlements', async () => {
    const id = await signUp('starter');
    const res = await post(`/v1/customers/${id}/plan-changes`, { plan: 'pro' }, a.key, { 'Idempotency-Key': `up-${id}` });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.status, 'applied');
    assert.equal(res.json.direction, 'upgrade');
    const [credit, charge] = res.json.proration.lines;
    // Seconds after sign-up nearly the whole period is left: about −9.00 and +49.00.
    assert.ok(credit.amount.minor < 0 && credit.amount.minor >= -900, JSON.stringify(credit));
    assert.ok(charge.amount.minor > 4800 && charge.amount.minor <= 4900, JSON.stringify(charge));
    assert.equal(res.json.proration.net.minor, credit.amount.minor + charge.amount.minor);
    assert.equal(res.json.invoice.total.minor, res.json.proration.net.minor);
    assert.match(res.json.proration.rule, /whole seconds/);
    assert.deepEqual(res.json.entitlements.features, ['api', 'sso']);
    const customer = await get(`/v1/customers/${id}`);
    assert.equal(customer.json.plan.code, 'pro');
    assert.equal(customer.json.planChanges.history.at(-1).status, 'applied');

    // The same key again is the same change: no second invoice.
    const again = await post(`/v1/customers/${id}/plan-changes`, { plan: 'pro' }, a.key, { 'Idempotency-Key': `up-${id}` });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.invoice.id, res.json.invoice.id);
    assert.equal((await stack.db('invoices').where({ brand_id: a.id, customer_id: id, kind: 'proration' })).length, 1);
  });

  it('refuses bad requests with the field named, and changes nothing', async () => {
    const id = await signUp('pro');
    const cases: Array<[unknown, number, string, string | undefined]> = [
      [{ plan: 'pro' }, 422, 'SAME_PLAN', 'body.plan'],
      [{ plan: 'no-such' }, 422, 'PLAN_NOT_FOUND', 'body.plan'],
      [{ plan: 'starter', when: 'now' }, 422, 'DOWNGRADE_AT_PERIOD_END', 'body.when'],
      [{ plan: 'minute' }, 422, 'INCOMPATIBLE_PLAN', 'body.plan'],
      [{ plan: 'Pro!' }, 400, 'VALIDATION_FAILED', 'body.plan'],
      [{ plan: 'starter', when: 'tomorrow' }, 400, 'VALIDATION_FAILED', 'body.when'],
      [{ plan: 'starter', extra: 1 }, 400, 'VALIDATION_FAILED', undefined],
    ];
    for (const [body, status, code, field] of cases) {
      const res = await post(`/v1/customers/${id}/plan-changes`, body);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
      if (status !== 400) assert.equal(res.json.error.code, code);
      if (field) assert.ok(res.json.error.details.some((d: { field: string }) => d.field === field), `${JSON.stringify(body)} names ${field}: ${res.text}`);
    }
    assert.equal((await post('/v1/customers/nobody/plan-changes', { plan: 'pro' })).status, 404);
    assert.equal((await post(`/v1/customers/${id}/plan-changes`, { plan: 'starter' }, b.key)).status, 404, 'another brand sees no such customer');
    assert.equal((await stack.call('DELETE', `/v1/customers/${id}/plan-changes/scheduled`, { key: a.key })).status, 404);
    const customer = await get(`/v1/customers/${id}`);
    assert.equal(customer.json.plan.code, 'pro');
    assert.equal(customer.json.planChanges.scheduled, null);
    assert.equal((await stack.db('invoices').where({ brand_id: a.id, customer_id: id })).length, 1);
  });

  it('schedules a downgrade, withdraws it, then cancels now and the workflow ends', async () => {
    const id = await signUp('pro');
    const scheduled = await post(`/v1/customers/${id}/plan-changes`, { plan: 'starter' });
    assert.equal(scheduled.status, 200, scheduled.text);
    assert.equal(scheduled.json.status, 'scheduled');
    assert.equal(scheduled.json.invoice, null);
    assert.equal((await get(`/v1/customers/${id}`)).json.planChanges.scheduled.plan.code, 'starter');
    const withdrawn = await stack.call('DELETE', `/v1/customers/${id}/plan-changes/scheduled`, { key: a.key });
    assert.equal(withdrawn.status, 200, withdrawn.text);

    assert.equal((await post(`/v1/customers/${id}/cancel`, { when: 'later' })).status, 400);
    const cancelled = await post(`/v1/customers/${id}/cancel`, { when: 'now', reason: 'too expensive' });
    assert.equal(cancelled.status, 200, cancelled.text);
    assert.equal(cancelled.json.stage, 'cancelled');
    assert.equal(cancelled.json.finalInvoice.amountDue.minor, 0);
    assert.ok(cancelled.json.proration.net.minor < 0, 'the unused time is credited');
    const again = await post(`/v1/customers/${id}/cancel`, { when: 'now' });
    assert.equal(again.status, 409, again.text);
    await eventually(async () => (await stack.db('customers').where({ brand_id: a.id, id }).first())?.stage === 'cancelled');
    const entitlements = await stack.db('entitlements').where({ brand_id: a.id, customer_id: id }).first();
    assert.equal(entitlements.active, false);
  });
});
