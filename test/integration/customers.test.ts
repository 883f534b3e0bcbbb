import assert from 'node:assert/strict';
import { customerWorkflowId } from '../../domain/ids';
import { customerWorkflow } from '../../workflows/customer';
import { seedPlans, setPolicy, TEST_OFFER_RULES } from '../support/fixtures';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Customers as a client app uses them: real HTTP, the Temporal dev server, the real worker
 * bundle and activities, PostgreSQL.
 */
describe('customers over HTTP (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    a = await stack.brand();
    b = await stack.brand({ currency: 'EUR' });
    for (const brand of [a, b]) {
      await seedPlans(stack.db, brand.id);
      await setPolicy(stack.db, brand.id, 'offers', TEST_OFFER_RULES);
    }
  });

  after(async () => {
    await stack?.stop();
  });

  const post = (path: string, body: unknown, key: string | null = a.key) => stack.call('POST', path, { key, body });
  const get = (path: string, key: string | null = a.key) => stack.call('GET', path, { key });

  it('signs up a customer with a plan, shows the credential once, and a repeat is the same customer', async () => {
    const id = uniqueId('cus');
    const created = await post('/v1/customers', { id, email: 'ada@example.com', name: 'Ada', plan: 'pro', paymentMethod: 'tok_visa' });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get('location'), `/v1/customers/${id}`);
    assert.equal(created.json.stage, 'active');
    assert.deepEqual(created.json.plan, { code: 'pro', version: 1, name: 'Pro' });
    assert.deepEqual(created.json.subscription.price, { amount: '49.00', currency: 'USD', minor: 4900 });
    // The first period's fee is invoiced in advance at activation and charged at once.
    assert.deepEqual(created.json.balance, { amount: '0.00', currency: 'USD', minor: 0 });
    const [payment] = await stack.db('payments').where({ brand_id: a.id, customer_id: id });
    assert.deepEqual([payment.status, Number(payment.amount_minor)], ['succeeded', 4900]);
    assert.deepEqual(created.json.entitlements.features, ['api', 'sso']);
    assert.equal(created.json.currentPeriod.number, 1);
    assert.match(created.json.credential.secret, /^cs_/);

    const again = await post('/v1/customers', { id, email: 'ada@example.com', name: 'Ada', plan: 'pro', paymentMethod: 'tok_visa' });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.createdAt, created.json.createdAt, 'the same customer, not a second one');
    assert.equal(again.json.credential, undefined, 'the secret is never shown again');

    const read = await get(`/v1/customers/${id}`);
    assert.equal(read.status, 200);
    const { offer: _offer, credential: _credential, ...view } = created.json;
    assert.deepEqual(read.json, view);

    // Stored hashed, never in clear.
    const creds = await stack.db('customer_credentials').where({ brand_id: a.id, customer_id: id });
    assert.equal(creds.length, 1);
    assert.notEqual(creds[0].secret_hash, created.json.credential.secret);

    const handle = stack.env.client.workflow.getHandle(customerWorkflowId(a.id, id));
    const { status, searchAttributes } = await handle.describe();
    assert.equal(status.name, 'RUNNING');
    assert.deepEqual(searchAttributes.CustomerStage, ['active']);
    assert.deepEqual(searchAttributes.PlanCode, ['pro']);
    const count = await eventually(async () => (await stack.env.client.workflow.count(`CustomerId = "${id}" AND BrandId = "${a.id}"`)).count);
    assert.equal(count, 1);
    assert.equal((await stack.db('customers').where({ brand_id: a.id, id })).length, 1);
  });

  it("lets the offer engine choose when no plan is named", async () => {
    const id = uniqueId('cus');
    const created = await post('/v1/customers', { id, email: 'max@example.de', paymentMethod: 'tok_visa', attributes: { country: 'DE' } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.json.plan.code, 'pro');
    assert.equal(created.json.offer.rule, 'de-pro');
    assert.deepEqual(created.json.offer.firstPeriodPrice, { amount: '39.20', currency: 'USD', minor: 3920 });
    assert.equal(created.json.subscription.discountPercent, 20);
  });

  it('rejects a second sign-up with the same id but different details (409), changing nothing', async () => {
    const id = uniqueId('cus');
    assert.equal((await post('/v1/customers', { id, email: 'grace@example.com', plan: 'starter', paymentMethod: 'tok_visa' })).status, 201);
    const conflict = await post('/v1/customers', { id, email: 'mallory@example.com', plan: 'starter', paymentMethod: 'tok_visa' });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.error.code, 'CUSTOMER_EXISTS');
    assert.equal(conflict.json.error.details[0].field, 'body.email');
    assert.equal((await get(`/v1/customers/${id}`)).json.email, 'grace@example.com');
  });

  it('answers bad input with 400 naming each field, and writes nothing', async () => {
    const id = uniqueId('cus');
    const bad = await post('/v1/customers', { id, email: 'not-an-email', plan: 42, paymentMethod: 'card 4242', extra: true });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.error.code, 'VALIDATION_FAILED');
    const fields = bad.json.error.details.map((d: { field: string }) => d.field).sort();
    assert.deepEqual(fields, ['body.email', 'body.extra', 'body.paymentMethod', 'body.plan']);
    assert.equal(await stack.workflowExists(customerWorkflowId(a.id, id)), false, 'no workflow was started');
    assert.equal(await stack.db('customers').where({ id }).first(), undefined, 'no row was written');

    const badJson = await stack.call('POST', '/v1/customers', { key: a.key, raw: '{"id": "x",' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json.error.code, 'INVALID_JSON');

    const badId = await get('/v1/customers/has%20space');
    assert.equal(badId.status, 400);
    assert.equal(badId.json.error.details[0].field, 'params.id');
  });

  it('answers an unknown plan with 422 naming body.plan, and starts nothing', async () => {
    const id = uniqueId('cus');
    const res = await post('/v1/customers', { id, email: 'x@example.com', plan: 'platinum', paymentMethod: 'tok_visa' });
    assert.equal(res.status, 422, res.text);
    assert.equal(res.json.error.code, 'PLAN_NOT_FOUND');
    assert.equal(res.json.error.details[0].field, 'body.plan');
    assert.equal(await stack.workflowExists(customerWorkflowId(a.id, id)), false);
  });

  it('answers a missing or wrong API key with 401, and writes nothing', async () => {
    const id = uniqueId('cus');
    const body = { id, email: 'eve@example.com', plan: 'starter', paymentMethod: 'tok_visa' };
    const missing = await post('/v1/customers', body, null);
    assert.equal(missing.status, 401);
    assert.equal(missing.json.error.code, 'UNAUTHORIZED');
    assert.equal((await post('/v1/customers', body, 'cl_test_not-a-real-key')).status, 401);
    const malformed = await fetch(`${stack.url}/v1/customers/${id}`, { headers: { authorization: 'Basic abc' } });
    assert.equal(malformed.status, 401);
    assert.equal(await stack.workflowExists(customerWorkflowId(a.id, id)), false);
  });

  it('activates a lead through the update, and refuses to activate it twice', async () => {
    const id = uniqueId('lead');
    await stack.env.client.workflow.start(customerWorkflow, {
      workflowId: customerWorkflowId(a.id, id),
      taskQueue: stack.taskQueue,
      args: [{ brandId: a.id, customerId: id, email: 'lead@example.com', lead: { source: 'partner', campaign: 'q4', attributes: {} } }],
    });
    assert.equal((await get(`/v1/customers/${id}`)).json.stage, 'lead');

    const badToken = await post(`/v1/customers/${id}/activate`, { paymentMethod: 'nope' });
    assert.equal(badToken.status, 400);
    assert.equal(badToken.json.error.details[0].field, 'body.paymentMethod');
    const unknownPlan = await post(`/v1/customers/${id}/activate`, { plan: 'platinum', paymentMethod: 'tok_visa' });
    assert.equal(unknownPlan.status, 422);
    assert.equal((await get(`/v1/customers/${id}`)).json.stage, 'lead', 'unchanged by rejected requests');

    const activated = await post(`/v1/customers/${id}/activate`, { paymentMethod: 'tok_visa', attributes: { segment: 'startup' } });
    assert.equal(activated.status, 200, activated.text);
    assert.equal(activated.json.stage, 'active');
    assert.equal(activated.json.offer.rule, 'startups');
    assert.equal(activated.json.plan.code, 'starter');
    assert.equal(activated.json.lead.source, 'partner');

    const twice = await post(`/v1/customers/${id}/activate`, { paymentMethod: 'tok_visa' });
    assert.equal(twice.status, 409);
    assert.equal(twice.json.error.code, 'ALREADY_ACTIVE');
    assert.equal((await stack.db('subscriptions').where({ brand_id: a.id, customer_id: id })).length, 1);

    assert.equal((await post(`/v1/customers/${uniqueId('nobody')}/activate`, { paymentMethod: 'tok_visa' })).status, 404);
  });

  it('takes a declined sign-up into dunning, and a new payment method out of it at once', async () => {
    const id = uniqueId('cus');
    const signup = await post('/v1/customers', { id, email: 'dun@example.com', plan: 'starter', paymentMethod: 'tok_hard_decline' });
    assert.equal(signup.status, 201, signup.text);
    assert.equal(signup.json.stage, 'past_due');
    assert.equal(signup.json.dunningState, 'awaiting_payment_method');
    assert.equal(signup.json.dunning.lastDecline.code, 'hard_decline');
    assert.deepEqual(signup.json.balance, { amount: '9.00', currency: 'USD', minor: 900 });

    const bad = await post(`/v1/customers/${id}/payment-method`, { paymentMethod: '4242 4242' });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details[0].field, 'body.paymentMethod');
    assert.equal((await post(`/v1/customers/${id}/payment-method`, { paymentMethod: 'tok_visa' }, b.key)).status, 404);

    const fixed = await post(`/v1/customers/${id}/payment-method`, { paymentMethod: 'tok_visa' });
    assert.equal(fixed.status, 200, fixed.text);
    assert.deepEqual(fixed.json, { stage: 'active', dunningState: 'none', collected: true, balance: { amount: '0.00', currency: 'USD', minor: 0 } });
    const payments = await stack.db('payments').where({ brand_id: a.id, customer_id: id }).orderBy('created_at');
    assert.deepEqual(payments.map((p) => p.status), ['declined', 'succeeded']);
  });

  it("never shows or changes one brand's customer with another brand's key", async () => {
    const id = uniqueId('cus');
    assert.equal((await post('/v1/customers', { id, email: 'a@example.com', plan: 'starter', paymentMethod: 'tok_visa' })).status, 201);
    assert.equal((await get(`/v1/customers/${id}`, b.key)).status, 404);
    assert.equal((await post(`/v1/customers/${id}/activate`, { paymentMethod: 'tok_visa' }, b.key)).status, 404);
    // Brand B may use the same customer id for its own, separate customer.
    const own = await post('/v1/customers', { id, email: 'b@example.com', plan: 'starter', paymentMethod: 'tok_visa' }, b.key);
    assert.equal(own.status, 201, own.text);
    assert.equal(own.json.brand, b.id);
    assert.equal((await get(`/v1/customers/${id}`)).json.email, 'a@example.com');
  });

  it('serves health, readiness, metrics and the OpenAPI document without a key', async () => {
    assert.equal((await get('/healthz', null)).status, 200);
    const ready = await get('/readyz', null);
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(ready.json.checks, { database: { ok: true }, temporal: { ok: true } });
    const metrics = await get('/metrics', null);
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /closeloop_http_requests_total\{method="POST",route="\/v1\/customers",status="201"\}/);
    assert.match(metrics.text, /route="\/v1\/customers",status="400"/);
    const doc = await get('/v1/openapi.json', null);
    assert.equal(doc.status, 200);
    assert.ok(doc.json.paths['/v1/customers'].post);
    assert.ok(doc.json.paths['/v1/customers/{id}/activate'].post);
    assert.ok(doc.json.paths['/v1/customers/{id}'].get);
    assert.deepEqual(doc.json.components.schemas.CreateCustomer.required.sort(), ['email', 'id', 'paymentMethod']);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await get('/nope', null);
    assert.equal(res.status, 404);
    assert.equal(res.json.error.code, 'NOT_FOUND');
  });
});
