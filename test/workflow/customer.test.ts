import assert from 'node:assert/strict';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Db } from '../../infra/db';
import { ensureBrand } from '../../infra/brands';
import { customerWorkflowId } from '../../domain/ids';
import { customerWorkflow } from '../../workflows/customer';
import { activateUpdate, CustomerWorkflowInput, disputeWorkflowId, getCustomerQuery, usageThresholdSignal, chargebackSignal } from '../../workflows/shared';
import { checkLedger } from '../../data/ledger';
import { seedMeteredPlan, seedPlans, setPolicy, TEST_OFFER_RULES } from '../support/fixtures';
import { testSmtpSink } from '../support/global';
import { failedWith, testActivities, testCredential as credential, testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const DAY = 24 * 60 * 60 * 1000;



describe('customer workflow (time-skipping server, real bundle, real PostgreSQL)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let db: Db;
  let brand: string;

  before(async function () {
    this.timeout(180_000);
    await workflowBundle();
    db = testDb();
    brand = uniqueId('wf').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brand, name: 'Workflow tests', currency: 'USD', mode: 'sandbox' });
    await seedPlans(db, brand);
    await seedMeteredPlan(db, brand);
    await setPolicy(db, brand, 'offers', TEST_OFFER_RULES);
    await setPolicy(db, brand, 'acquisition', {
      nurture: [
        { after: 'P1D', template: 'nurture-welcome' },
        { after: 'P3D', template: 'nurture-reminder' },
      ],
      leadExpiresAfter: 'P7D',
    });
  });

  // A fresh server per test: time skipping is global, so a leftover workflow whose worker is
  // gone would hold time still for the next test; and the test server answers the client's
  // keepalive pings after a minute or so with GOAWAY, which strands a long-lived connection.
  beforeEach(async function () {
    this.timeout(60_000);
    env = await timeSkippingEnvironment();
  });
  afterEach(async () => {
    await env?.teardown();
  });

  after(async () => {
    await db?.destroy();
  });

  async function worker(taskQueue: string, activities: object = testActivities(db)): Promise<Worker> {
    return Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities });
  }

  async function startCustomer(taskQueue: string, extra: Partial<CustomerWorkflowInput> = {}) {
    const customerId = uniqueId('cus');
    const workflowId = customerWorkflowId(brand, customerId);
    if (extra.lead) {
      await db('leads').insert({ brand_id: brand, id: customerId, email: 'lead@example.com', source: extra.lead.source, campaign: extra.lead.campaign });
    }
    const handle = await env.client.workflow.start(customerWorkflow, {
      workflowId,
      taskQueue,
      args: [{ brandId: brand, customerId, email: 'lead@example.com', ...extra }],
    });
    return { customerId, workflowId, handle };
  }

  it('nurtures a lead on durable timers and expires it when it never converts', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, handle } = await startCustomer(taskQueue, { lead: { source: 'ads', campaign: 'spring', attributes: {} } });
      const first = await handle.query(getCustomerQuery);
      assert.equal(first.stage, 'lead');
      await env.sleep(2 * DAY);
      assert.equal((await handle.query(getCustomerQuery)).lead?.nurtureSent, 1);
      await handle.result(); // skips to the expiry and ends
      const last = await handle.query(getCustomerQuery);
      assert.equal(last.stage, 'lead_expired');
      assert.equal(last.lead?.nurtureSent, 2);
      assert.equal(Date.parse(last.lead!.expiresAt!) - Date.parse(last.lead!.capturedAt), 7 * DAY);
      const messages = await db('outbound_messages').where({ brand_id: brand, customer_id: customerId }).orderBy('id');
      assert.deepEqual(messages.map((m) => m.template), ['nurture-welcome', 'nurture-reminder']);
      const lead = await db('leads').where({ brand_id: brand, id: customerId }).first();
      assert.equal(lead.status, 'expired');
      assert.equal((await db('customers').where({ brand_id: brand, id: customerId }).first()).stage, 'lead_expired');
    });
  });

  it("converts a lead with the offer engine's choice and provisions it", async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, handle } = await startCustomer(taskQueue, { lead: { source: 'ads', campaign: 'spring', attributes: {} } });
      const result = await handle.executeUpdate(activateUpdate, {
        args: [{ paymentMethod: 'tok_visa', buyer: { country: 'DE' }, credential: credential() }],
      });
      assert.equal(result.offer.rule, 'de-pro');
      assert.equal(result.subscription.planCode, 'pro');
      assert.equal(result.subscription.discountPercent, 20);
      assert.equal(result.offer.firstPeriodPriceMinor, 3920);
      const state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'active');
      assert.deepEqual(state.entitlements?.features, ['api', 'sso']);
      assert.equal(state.currentPeriod?.number, 1);

      const where = { brand_id: brand, customer_id: customerId };
      assert.equal((await db('customer_credentials').where(where).whereNull('revoked_at')).length, 1);
      assert.equal((await db('entitlements').where({ ...where, active: true })).length, 1);
      const subs = await db('subscriptions').where(where);
      assert.equal(subs.length, 1);
      assert.equal(subs[0].plan_code, 'pro');
      assert.equal(subs[0].status, 'active');
      assert.equal((await db('leads').where({ brand_id: brand, id: customerId }).first()).status, 'converted');
      // The opening invoice (Pro at 20 % off) is revenue attributed back to the lead's source.
      const revenue = await db('attributed_revenue').where({ brand_id: brand, customer_id: customerId });
      assert.deepEqual(revenue.map((r) => Number(r.amount_minor)), [3920]);
      const { searchAttributes } = await handle.describe();
      assert.deepEqual(searchAttributes.PlanCode, ['pro']);
      assert.deepEqual(searchAttributes.CustomerStage, ['active']);

      // A second activation is rejected by the validator and changes nothing.
      await assert.rejects(
        handle.executeUpdate(activateUpdate, { args: [{ paymentMethod: 'tok_visa', credential: credential() }] }),
        failedWith('ALREADY_ACTIVE'),
      );
      assert.equal((await db('subscriptions').where(where)).length, 1);
    });
  });

  it('rejects an invalid payment token and an unknown plan, leaving the lead as it was', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, handle } = await startCustomer(taskQueue, { lead: { source: 'ads', campaign: '', attributes: {} } });
      await assert.rejects(
        handle.executeUpdate(activateUpdate, { args: [{ paymentMethod: 'card 4242', credential: credential() }] }),
        failedWith('INVALID_PAYMENT_METHOD'),
      );
      await assert.rejects(
        handle.executeUpdate(activateUpdate, { args: [{ plan: 'platinum', paymentMethod: 'tok_visa', credential: credential() }] }),
        failedWith('PLAN_NOT_FOUND'),
      );
      const state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'lead');
      assert.equal(state.lastActivationError?.type, 'PLAN_NOT_FOUND');
      assert.equal((await db('subscriptions').where({ brand_id: brand, customer_id: customerId })).length, 0);
    });
  });

  it('compensates a provisioning failure half-way and can be activated afterwards', async () => {
    const taskQueue = uniqueId('tq');
    const real = testActivities(db);
    let failSubscription = true;
    const activities = {
      ...real,
      // The database refusing the subscription row, as an outage that outlasts the retries would.
      async createSubscription(input: Parameters<typeof real.createSubscription>[0]) {
        if (failSubscription) throw ApplicationFailure.nonRetryable('subscriptions table unavailable', 'DB_UNAVAILABLE');
        return real.createSubscription(input);
      },
    };
    await (await worker(taskQueue, activities)).runUntil(async () => {
      const { customerId, handle } = await startCustomer(taskQueue, { lead: { source: 'ads', campaign: '', attributes: {} } });
      await assert.rejects(
        handle.executeUpdate(activateUpdate, { args: [{ plan: 'starter', paymentMethod: 'tok_visa', credential: credential() }] }),
        failedWith('PROVISIONING_FAILED'),
      );
      const where = { brand_id: brand, customer_id: customerId };
      const state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'lead', 'still a lead, not half-provisioned');
      assert.equal(state.subscription, null);
      assert.equal(state.entitlements, null);
      assert.equal(state.lastActivationError?.type, 'PROVISIONING_FAILED');
      assert.match(state.lastActivationError!.message, /subscriptions table unavailable/);
      const creds = await db('customer_credentials').where(where);
      assert.equal(creds.length, 1);
      assert.ok(creds[0].revoked_at, 'the credential was revoked');
      assert.equal((await db('entitlements').where(where).first()).active, false, 'entitlements were withdrawn');
      assert.equal((await db('subscriptions').where(where)).length, 0);
      assert.equal((await db('leads').where({ brand_id: brand, id: customerId }).first()).status, 'open');

      failSubscription = false;
      const result = await handle.executeUpdate(activateUpdate, {
        args: [{ plan: 'starter', paymentMethod: 'tok_visa', credential: credential() }],
      });
      assert.equal(result.stage, 'active');
      assert.equal((await db('entitlements').where({ ...where, active: true })).length, 1);
      assert.equal((await db('customer_credentials').where(where).whereNull('revoked_at')).length, 1);
      assert.equal((await handle.query(getCustomerQuery)).lastActivationError, null);
    });
  });

  it('lives 24 monthly periods, each in a fresh bounded history, carrying its state', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { workflowId, handle } = await startCustomer(taskQueue);
      const activated = await handle.executeUpdate(activateUpdate, {
        args: [{ plan: 'pro', paymentMethod: 'tok_visa', credential: credential() }],
      });
      const lengths: number[] = [];
      const runIds = new Set<string>();
      for (let month = 0; month < 24; month += 1) {
        await env.sleep(31 * DAY);
        const current = env.client.workflow.getHandle(workflowId);
        const { runId, historyLength } = await current.describe();
        runIds.add(runId);
        lengths.push(historyLength);
      }
      const state = await env.client.workflow.getHandle(workflowId).query(getCustomerQuery);
      assert.ok(state.currentPeriod!.number >= 24, `period ${state.currentPeriod!.number}`);
      assert.equal(state.stage, 'active');
      assert.equal(state.subscription?.planCode, 'pro');
      assert.equal(state.subscription?.startedAt, activated.subscription.startedAt, 'the billing anchor is carried');
      assert.deepEqual(state.entitlements, activated.entitlements);
      assert.equal(runIds.size, 24, 'a new run every period');
      assert.ok(Math.max(...lengths) <= 30, `history per run stays bounded: ${lengths.join(',')}`);
      assert.ok(Math.max(...lengths.slice(1)) === Math.min(...lengths.slice(1)), `and flat: ${lengths.join(',')}`);
    });
  });

  it('bills a metered customer over three periods: fee in advance, usage in arrears, a late event as an adjustment', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, workflowId, handle } = await startCustomer(taskQueue);
      await handle.executeUpdate(activateUpdate, { args: [{ plan: 'metered', paymentMethod: 'tok_visa', credential: credential() }] });
      const usage = async (eventId: string, metric: string, quantity: string, at: string) =>
        db('usage_events').insert({ brand_id: brand, customer_id: customerId, event_id: eventId, metric, quantity, occurred_at: at });
      const inPeriod = (p: { start: string }, hours: number) => new Date(Date.parse(p.start) + hours * 3_600_000).toISOString();
      const live = () => env.client.workflow.getHandle(workflowId);
      const closePeriod = async () => {
        const { currentPeriod } = await live().query(getCustomerQuery);
        await env.sleep(Date.parse(currentPeriod!.end) - (await env.currentTimeMs()) + 60_000);
        return currentPeriod!;
      };

      const p1 = (await live().query(getCustomerQuery)).currentPeriod!;
      await usage('e1', 'api_calls', '1234000', inPeriod(p1, 1));
      // Reported with a time from before the subscription began (usage sent while the activation was
      // still going on): it belongs to period 1, billed once in its usage line (not again as a late
      // adjustment of period 1, which the fault suite caught).
      await usage('e2', 'api_calls', '567', inPeriod(p1, -2));
      await usage('e3', 'storage_gb', '12.5', inPeriod(p1, 3));
      await closePeriod();

      const p2 = (await live().query(getCustomerQuery)).currentPeriod!;
      await usage('e4', 'api_calls', '500', inPeriod(p2, 1));
      await closePeriod();

      const p3 = (await live().query(getCustomerQuery)).currentPeriod!;
      await usage('e5', 'api_calls', '2000000', inPeriod(p3, 1));
      // Reported during period 3 but it happened in period 2, which is already invoiced.
      await usage('e6', 'api_calls', '5000', inPeriod(p2, 5));
      await closePeriod();

      const invoices = await db('invoices').where({ brand_id: brand, customer_id: customerId }).orderBy('number');
      assert.deepEqual(invoices.map((i) => i.billing_key), ['opening', 'period:1', 'period:2', 'period:3']);
      assert.deepEqual(
        invoices.map((i) => Number(i.number)),
        invoices.map((_, k) => Number(invoices[0].number) + k),
        'numbers run without gaps',
      );
      const lines = async (invoiceId: string) =>
        (await db('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position')).map((l) => [l.kind, l.metric, Number(l.amount_minor)]);

      // Opening: the first period's fee in advance.
      assert.deepEqual(await lines(invoices[0].id), [['recurring', null, 1000]]);
      assert.equal(Number(invoices[0].total_minor), 1000);
      // Period 1: (1,234,567 − 1,000 included) × 0.0004 = 493.4268 → 49343; storage 2.5 GB × 0.25 = 0.625 → 63.
      assert.deepEqual(await lines(invoices[1].id), [
        ['usage', 'api_calls', 49343],
        ['usage', 'storage_gb', 63],
        ['recurring', null, 1000],
      ]);
      assert.equal(Number(invoices[1].total_minor), 50406);
      // Period 2: 500 calls are inside the allowance.
      assert.deepEqual(await lines(invoices[2].id), [
        ['usage', 'api_calls', 0],
        ['usage', 'storage_gb', 0],
        ['recurring', null, 1000],
      ]);
      assert.equal(Number(invoices[2].total_minor), 1000);
      // Period 3: 1,999,000 × 0.0004 = 799.60; the late 5,000 calls re-rate period 2 from 500 to
      // 5,500 calls: (5,500 − 1,000) × 0.0004 = 1.80 more.
      assert.deepEqual(await lines(invoices[3].id), [
        ['usage', 'api_calls', 79960],
        ['usage', 'storage_gb', 0],
        ['usage_adjustment', 'api_calls', 180],
        ['recurring', null, 1000],
      ]);
      assert.equal(Number(invoices[3].total_minor), 81140);

      const unbilled = await db('usage_events').where({ brand_id: brand, customer_id: customerId }).whereNull('invoice_id');
      assert.equal(unbilled.length, 0, 'every event billed exactly once');
      // Each invoice was charged once, for its total, with a key derived from invoice and attempt.
      const payments = await db('payments').where({ brand_id: brand, customer_id: customerId }).orderBy('created_at');
      assert.deepEqual(payments.map((p) => [p.invoice_id, p.status, Number(p.amount_minor)]), invoices.map((i) => [i.id, 'succeeded', Number(i.total_minor)]));
      const state = await live().query(getCustomerQuery);
      assert.equal(state.balanceMinor, 0);
      assert.equal(state.stage, 'active');
      const check = await checkLedger(db, brand);
      assert.deepEqual(check.unbalanced, []);
      assert.deepEqual(check.receivablesMismatches, []);
      const mails = testSmtpSink().messages().filter((m) => invoices.some((i) => m.messageId?.includes(i.id)));
      assert.equal(mails.length, 4, 'each invoice emailed once');
    });
  });

  it('tells the customer once per period when usage crosses 80 % and 100 % of the allowance', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, handle } = await startCustomer(taskQueue);
      await handle.executeUpdate(activateUpdate, { args: [{ plan: 'metered', paymentMethod: 'tok_visa', credential: credential() }] });
      const crossing = (threshold: 80 | 100) => ({ metric: 'api_calls', threshold, quantity: '850', included: '1000', at: new Date().toISOString() });
      await handle.signal(usageThresholdSignal, crossing(80));
      await handle.signal(usageThresholdSignal, crossing(80)); // the API may report a crossing twice
      await handle.signal(usageThresholdSignal, crossing(100));
      const state = await handle.query(getCustomerQuery);
      assert.deepEqual(state.usageAlerts, ['1:api_calls:80', '1:api_calls:100']);
      const templates = async () =>
        (await db('outbound_messages').where({ brand_id: brand, customer_id: customerId, category: 'usage' }).orderBy('id'))
          .map((m) => m.template)
          .filter((t) => t.startsWith('usage-'));
      for (let i = 0; i < 50 && (await templates()).length < 2; i += 1) await new Promise((r) => setTimeout(r, 100));
      // Each message is its own workflow, started without waiting: they may be recorded in either order.
      assert.deepEqual((await templates()).sort(), ['usage-allowance-80', 'usage-allowance-used']);
    });
  });

  it('records a chargeback the gateway reports (at least once) a single time and opens one dispute for it', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, handle } = await startCustomer(taskQueue);
      await handle.executeUpdate(activateUpdate, { args: [{ plan: 'pro', paymentMethod: 'tok_visa', credential: credential() }] });
      const payment = await db('payments').where({ brand_id: brand, customer_id: customerId, status: 'succeeded' }).first();
      const notice = {
        paymentId: payment.id,
        gatewayPaymentId: payment.gateway_payment_id,
        chargebackId: `dp_${customerId}`,
        invoiceId: payment.invoice_id,
        amountMinor: 4900,
        currency: 'USD',
        reason: 'fraudulent',
        evidenceDueBy: new Date(Date.now() + 7 * DAY).toISOString(),
        eventId: 'evt_1',
      };
      await handle.signal(chargebackSignal, notice);
      await handle.signal(chargebackSignal, { ...notice, eventId: 'evt_1-redelivered' });
      const state = await handle.query(getCustomerQuery);
      assert.deepEqual(state.chargebacks.map((c) => c.chargebackId), [notice.chargebackId]);
      const disputes = () => db('disputes').where({ brand_id: brand, customer_id: customerId });
      for (let i = 0; i < 100 && (await disputes()).length === 0; i += 1) await new Promise((r) => setTimeout(r, 100));
      const [dispute, ...more] = await disputes();
      assert.equal(more.length, 0, 'one dispute for a chargeback reported twice');
      assert.equal(dispute.kind, 'chargeback');
      // Its dispute workflow was started by the customer workflow (it may already have ended).
      let started = false;
      for (let i = 0; i < 100 && !started; i += 1) {
        started = await env.client.workflow
          .getHandle(disputeWorkflowId(brand, dispute.id))
          .describe()
          .then(() => true, () => false);
        if (!started) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(started, 'the dispute workflow runs');
    });
  });
});
