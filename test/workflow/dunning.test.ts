import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { customerWorkflowId } from '../../domain/ids';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { customerWorkflow } from '../../workflows/customer';
import { activateUpdate, getCustomerQuery, updatePaymentMethodUpdate } from '../../workflows/shared';
import { seedPlans, setPolicy } from '../support/fixtures';
import { testSandboxGateway } from '../support/global';
import { testActivities, testCredential, testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const DAY = 24 * 60 * 60 * 1000;

/**
 * Collections and dunning against the sandbox gateway (a real HTTP service): its test tokens
 * decline the way cards do. Brand policy: retries after 1, 3 and 5 days; 2 days' grace once
 * retries stop; write-off after 20 days.
 */
describe('collections and dunning (time-skipping server, sandbox gateway)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let db: Db;
  let brand: string;

  before(async function () {
    this.timeout(180_000);
    await workflowBundle();
    db = testDb();
    brand = uniqueId('dun').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brand, name: 'Dunning tests', currency: 'USD', mode: 'sandbox' });
    await seedPlans(db, brand);
    await setPolicy(db, brand, 'dunning', { retrySchedule: ['P1D', 'P3D', 'P5D'], gracePeriod: 'P2D', writeOffAfter: 'P20D' });
  });
  beforeEach(async function () {
    this.timeout(60_000);
    env = await timeSkippingEnvironment();
  });
  afterEach(async () => env?.teardown());
  after(async () => db?.destroy());

  async function activeCustomer(taskQueue: string, paymentMethod: string) {
    const customerId = uniqueId('cus');
    const workflowId = customerWorkflowId(brand, customerId);
    const handle = await env.client.workflow.start(customerWorkflow, {
      workflowId,
      taskQueue,
      args: [{ brandId: brand, customerId, email: `${customerId}@example.com` }],
    });
    const result = await handle.executeUpdate(activateUpdate, {
      args: [{ plan: 'pro', paymentMethod, credential: testCredential() }],
    });
    return { customerId, handle, result };
  }

  const sent = async (customerId: string) =>
    (await db('outbound_messages').where({ brand_id: brand, customer_id: customerId }).orderBy('id')).map((m) => m.template).filter((t) => t !== 'welcome' && t !== 'invoice-ready');
  /** Messages go out through child workflows, a moment after the step that caused them: wait for the expected count. */
  const templates = async (customerId: string, count = 3) => {
    for (let i = 0; i < 100 && (await sent(customerId)).length < count; i += 1) await new Promise((r) => setTimeout(r, 50));
    return sent(customerId);
  };
  const gatewayCharges = (token: string) => testSandboxGateway().charges().filter((c) => c.payment_method === token);

  it('recovers a soft decline on the second retry', async () => {
    const taskQueue = uniqueId('tq');
    const token = `tok_soft_decline_${crypto.randomBytes(4).toString('hex')}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    await worker.runUntil(async () => {
      const { customerId, handle, result } = await activeCustomer(taskQueue, token);
      assert.equal(result.stage, 'past_due', 'the first charge was declined');
      let state = await handle.query(getCustomerQuery);
      assert.equal(state.dunningState, 'retrying');
      assert.equal(state.balanceMinor, 4900);

      await env.sleep(DAY + 60_000); // retry 1: declined again
      state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'past_due');
      assert.equal(state.dunning?.retriesDone, 1);

      await env.sleep(2 * DAY); // retry 2, at day 3: approved
      state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'active');
      assert.equal(state.dunningState, 'none');
      assert.equal(state.balanceMinor, 0);
      const { searchAttributes } = await handle.describe();
      assert.deepEqual(searchAttributes.DunningState, ['none']);

      assert.deepEqual(await templates(customerId), ['payment-failed', 'payment-retry-failed', 'payment-recovered']);
      const charges = gatewayCharges(token);
      assert.deepEqual(charges.map((c) => c.status), ['declined', 'declined', 'succeeded']);
      const payments = await db('payments').where({ brand_id: brand, customer_id: customerId }).orderBy('created_at');
      assert.deepEqual(payments.map((p) => p.status), ['declined', 'declined', 'succeeded']);
      assert.equal(new Set(payments.map((p) => p.idempotency_key)).size, 3, 'one key per attempt');
    });
  });

  it('takes a hard decline through grace, suspension and write-off, with a message at each step', async () => {
    const taskQueue = uniqueId('tq');
    const token = `tok_hard_decline_${crypto.randomBytes(4).toString('hex')}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    await worker.runUntil(async () => {
      const { customerId, handle } = await activeCustomer(taskQueue, token);
      let state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'past_due');
      assert.equal(state.dunningState, 'awaiting_payment_method', 'no retries of a hard decline');

      await env.sleep(2 * DAY + 60_000); // grace is over
      state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'suspended');
      assert.equal((await db('entitlements').where({ brand_id: brand, customer_id: customerId }).first()).active, false);

      await handle.result(); // the write-off at day 20 ends the customer
      state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'cancelled');
      assert.equal(state.dunningState, 'written_off');
      const [writeOff] = await db('write_offs').where({ brand_id: brand, customer_id: customerId });
      assert.equal(Number(writeOff.amount_minor), 4900);
      assert.equal((await db('subscriptions').where({ brand_id: brand, customer_id: customerId }).first()).status, 'cancelled');
      assert.deepEqual(await templates(customerId), ['payment-failed-update-method', 'service-suspended', 'account-written-off']);
      assert.equal(gatewayCharges(token).length, 1, 'a hard decline is not retried');
    });
  });

  it('recovers at once when a new payment method arrives mid-dunning, restoring a suspended service', async () => {
    const taskQueue = uniqueId('tq');
    const token = `tok_hard_decline_${crypto.randomBytes(4).toString('hex')}`;
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    await worker.runUntil(async () => {
      const { customerId, handle } = await activeCustomer(taskQueue, token);
      await env.sleep(3 * DAY);
      assert.equal((await handle.query(getCustomerQuery)).stage, 'suspended');

      await assert.rejects(handle.executeUpdate(updatePaymentMethodUpdate, { args: [{ paymentMethod: 'not a token' }] }));
      const result = await handle.executeUpdate(updatePaymentMethodUpdate, { args: [{ paymentMethod: 'tok_visa' }] });
      assert.deepEqual(result, { stage: 'active', dunningState: 'none', collected: true });
      assert.equal((await db('entitlements').where({ brand_id: brand, customer_id: customerId }).first()).active, true);
      assert.deepEqual(await templates(customerId), ['payment-failed-update-method', 'service-suspended', 'service-restored']);

      await env.sleep(20 * DAY); // no write-off after recovery
      const state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'active');
      assert.equal((await db('write_offs').where({ brand_id: brand, customer_id: customerId })).length, 0);
    });
  });
});
