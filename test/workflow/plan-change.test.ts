import assert from 'node:assert/strict';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { customerWorkflowId } from '../../domain/ids';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { customerWorkflow } from '../../workflows/customer';
import { activateUpdate, cancelUpdate, changePlanUpdate, getCustomerQuery, requestPlanChangeSignal, withdrawPlanChangeUpdate } from '../../workflows/shared';
import { seedMeteredPlan, seedPlans } from '../support/fixtures';
import { failedWith, testActivities, testCredential as credential, testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const DAY = 24 * 60 * 60 * 1000;


/**
 * Starter (9.00) → Pro (49.00) with exactly 11 days of the period left, worked by hand for each
 * length a monthly period can have (the test server's clock starts at today's date):
 *   credit = 900 × 11/D, charge = 4900 × 11/D, each rounded half away from zero to the cent.
 */
const STARTER_TO_PRO_11_DAYS_LEFT: Record<number, [number, number]> = {
  28: [-354, 1925], // 353.57 → 354; 1925 exactly
  29: [-341, 1859], // 341.38 → 341; 1858.62 → 1859
  30: [-330, 1797], // 330 exactly; 1796.67 → 1797
  31: [-319, 1739], // 319.35 → 319; 1738.71 → 1739
};

describe('plan changes and cancellation (time-skipping server, real bundle, real PostgreSQL)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment;
  let db: Db;
  let brand: string;

  before(async function () {
    this.timeout(180_000);
    await workflowBundle();
    db = testDb();
    brand = uniqueId('pc').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brand, name: 'Plan change tests', currency: 'USD', mode: 'sandbox' });
    await seedPlans(db, brand);
    await seedMeteredPlan(db, brand);
    // A bigger metered plan: a higher fee, cheaper calls, no allowance.
    await db('plans').insert({
      brand_id: brand,
      code: 'metered-pro',
      version: 1,
      name: 'Metered Pro',
      currency: 'USD',
      recurring_fee_minor: 3000,
      cost_to_serve_minor: 300,
      billing_period: 'P1M',
      entitlements: JSON.stringify({ features: ['api', 'sso'], quotas: { api_calls: 100000 } }),
      usage_components: JSON.stringify([{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0001', includedQuantity: 0 }]),
    });
  });

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

  async function run(fn: (ctx: { customerId: string; handle: ReturnType<TestWorkflowEnvironment['client']['workflow']['getHandle']> }) => Promise<void>, plan = 'starter') {
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    await worker.runUntil(async () => {
      const customerId = uniqueId('cus');
      const workflowId = customerWorkflowId(brand, customerId);
      await env.client.workflow.start(customerWorkflow, { workflowId, taskQueue, args: [{ brandId: brand, customerId, email: 'plan@example.com' }] });
      const handle = env.client.workflow.getHandle(workflowId);
      await handle.executeUpdate(activateUpdate, { args: [{ plan, paymentMethod: 'tok_visa', credential: credential() }] });
      await fn({ customerId, handle });
    });
  }

  const invoicesOf = (customerId: string) => db('invoices').where({ brand_id: brand, customer_id: customerId }).orderBy('number');
  const linesOf = async (invoiceId: string) =>
    (await db('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position')).map((l) => [l.kind, l.metric, Number(l.amount_minor)]);
  const sleepUntil = async (at: number) => env.sleep(at - (await env.currentTimeMs()));

  it('upgrades mid-period: entitlements at once, proration to the cent as worked by hand, collected on one invoice', async () => {
    await run(async ({ customerId, handle }) => {
      const period = (await handle.query(getCustomerQuery)).currentPeriod!;
      const days = Math.round((Date.parse(period.end) - Date.parse(period.start)) / DAY);
      await sleepUntil(Date.parse(period.end) - 11 * DAY);

      const result = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'pro' }] });
      assert.equal(result.status, 'applied');
      assert.equal(result.direction, 'upgrade');
      assert.deepEqual(
        result.prorationLines.map((l) => l.amountMinor),
        STARTER_TO_PRO_11_DAYS_LEFT[days],
      );
      const net = STARTER_TO_PRO_11_DAYS_LEFT[days]!.reduce((a, b) => a + b, 0);
      assert.equal(result.invoice?.totalMinor, net);
      assert.deepEqual(result.entitlements.features, ['api', 'sso']);

      const state = await handle.query(getCustomerQuery);
      assert.equal(state.subscription?.planCode, 'pro');
      assert.equal(state.subscription?.startedAt, period.start, 'the period anchor stays');
      assert.equal(state.planChanges?.history.at(-1)?.status, 'applied');
      const entitlements = await db('entitlements').where({ brand_id: brand, customer_id: customerId }).first();
      assert.deepEqual(entitlements.features, ['api', 'sso']);
      assert.equal((await db('subscriptions').where({ brand_id: brand, customer_id: customerId }).first()).plan_code, 'pro');

      const [opening, proration] = await invoicesOf(customerId);
      assert.equal(proration.kind, 'proration');
      assert.deepEqual(await linesOf(proration.id), [
        ['proration', null, STARTER_TO_PRO_11_DAYS_LEFT[days]![0]],
        ['proration', null, STARTER_TO_PRO_11_DAYS_LEFT[days]![1]],
      ]);
      const paid = await db('payments').where({ brand_id: brand, invoice_id: proration.id, status: 'succeeded' });
      assert.equal(paid.length, 1);
      assert.equal(Number(paid[0].amount_minor), net);
      assert.equal(Number(opening.total_minor), 900);

      // The next period is billed at the new plan.
      await sleepUntil(Date.parse(period.end) + 60_000);
      const next = (await invoicesOf(customerId))[2];
      assert.deepEqual(await linesOf(next.id), [['recurring', null, 4900]]);
    });
  });

  it('rates usage before an upgrade at the old prices and after it at the new ones', async () => {
    await run(async ({ customerId, handle }) => {
      const period = (await handle.query(getCustomerQuery)).currentPeriod!;
      const at = (hours: number) => new Date(Date.parse(period.start) + hours * 3_600_000).toISOString();
      await db('usage_events').insert({ brand_id: brand, customer_id: customerId, event_id: 'before', metric: 'api_calls', quantity: '6000', occurred_at: at(1) });
      await sleepUntil(Date.parse(period.start) + 2 * 3_600_000);
      const result = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'metered-pro', when: 'now' }] });
      await db('usage_events').insert({ brand_id: brand, customer_id: customerId, event_id: 'after', metric: 'api_calls', quantity: '10000', occurred_at: at(3) });
      await sleepUntil(Date.parse(period.end) + 60_000);

      const [, proration, closing] = await invoicesOf(customerId);
      assert.equal(proration.id, result.invoice?.invoiceId);
      // Before: (6,000 − 1,000 included) × 0.0004 = 2.00 on the old plan, with the proration.
      const prorationLines = await linesOf(proration.id);
      assert.deepEqual(prorationLines.slice(0, 2), [
        ['usage', 'api_calls', 200],
        ['usage', 'storage_gb', 0],
      ]);
      assert.deepEqual(
        prorationLines.slice(2).map((l) => l[0]),
        ['proration', 'proration'],
      );
      // After: 10,000 × 0.0001 = 1.00 on the new plan, and its fee for the next period.
      assert.deepEqual(await linesOf(closing.id), [
        ['usage', 'api_calls', 100],
        ['recurring', null, 3000],
      ]);
    }, 'metered');
  });

  it('schedules a downgrade for the end of the period, where it applies', async () => {
    await run(async ({ customerId, handle }) => {
      const period = (await handle.query(getCustomerQuery)).currentPeriod!;
      await assert.rejects(handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'starter', when: 'now' }] }), failedWith('DOWNGRADE_AT_PERIOD_END'));
      const scheduled = await handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'starter' }] });
      assert.equal(scheduled.status, 'scheduled');
      assert.equal(scheduled.effectiveAt, period.end);
      assert.deepEqual(scheduled.prorationLines, []);
      assert.equal(scheduled.invoice, null);
      let state = await handle.query(getCustomerQuery);
      assert.equal(state.subscription?.planCode, 'pro', 'nothing changes before the period ends');
      assert.equal(state.planChanges?.scheduled?.to.code, 'starter');

      await sleepUntil(Date.parse(period.end) + 60_000);
      state = await handle.query(getCustomerQuery);
      assert.equal(state.subscription?.planCode, 'starter');
      assert.equal(state.planChanges?.scheduled, null);
      assert.deepEqual(state.entitlements?.features, ['api']);
      const invoices = await invoicesOf(customerId);
      assert.deepEqual(await linesOf(invoices[1].id), [['recurring', null, 900]], 'period 2 is billed at the new plan');
      assert.equal((await db('entitlements').where({ brand_id: brand, customer_id: customerId }).first()).features.includes('sso'), false);
    }, 'pro');
  });

  it('withdraws a scheduled downgrade: the period renews on the old plan', async () => {
    await run(async ({ customerId, handle }) => {
      const period = (await handle.query(getCustomerQuery)).currentPeriod!;
      await handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'starter', when: 'period_end' }] });
      const withdrawn = await handle.executeUpdate(withdrawPlanChangeUpdate, { args: [] });
      assert.equal(withdrawn.to.code, 'starter');
      assert.equal((await handle.query(getCustomerQuery)).planChanges?.history.at(-1)?.status, 'withdrawn');
      await sleepUntil(Date.parse(period.end) + 60_000);
      assert.deepEqual(await linesOf((await invoicesOf(customerId))[1].id), [['recurring', null, 4900]]);
      await assert.rejects(handle.executeUpdate(withdrawPlanChangeUpdate, { args: [] }), failedWith('NO_SCHEDULED_CHANGE'));
    }, 'pro');
  });

  it('rejects the same plan, an unknown plan and a bad request with a reason, changing nothing', async () => {
    await run(async ({ customerId, handle }) => {
      await assert.rejects(handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'starter' }] }), failedWith('SAME_PLAN'));
      await assert.rejects(handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'no-such-plan' }] }), failedWith('PLAN_NOT_FOUND'));
      await assert.rejects(handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'Bad Plan!' }] }), failedWith('INVALID_INPUT'));
      // Callers that do not wait send a signal; the rejection is kept in the customer's state.
      await handle.signal(requestPlanChangeSignal, { plan: 'starter', changeId: 'batch-1' });
      let state = await handle.query(getCustomerQuery);
      for (let i = 0; i < 20 && !state.planChanges?.history.some((h) => h.changeId === 'batch-1'); i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        state = await handle.query(getCustomerQuery);
      }
      const rejected = state.planChanges?.history.find((h) => h.changeId === 'batch-1');
      assert.equal(rejected?.status, 'rejected');
      assert.equal(rejected?.reason?.type, 'SAME_PLAN');
      assert.equal(state.subscription?.planCode, 'starter');
      assert.equal((await invoicesOf(customerId)).length, 1, 'only the opening invoice');
    });
  });

  it('cancels now: final invoice credits the unused time, entitlements go, and the workflow ends', async () => {
    await run(async ({ customerId, handle }) => {
      const period = (await handle.query(getCustomerQuery)).currentPeriod!;
      await sleepUntil(Date.parse(period.end) - 11 * DAY);
      const result = await handle.executeUpdate(cancelUpdate, { args: [{ when: 'now', reason: 'moving on' }] });
      assert.equal(result.stage, 'cancelled');
      const days = Math.round((Date.parse(period.end) - Date.parse(period.start)) / DAY);
      const credit = STARTER_TO_PRO_11_DAYS_LEFT[days]![0];
      assert.deepEqual(
        result.prorationLines.map((l) => l.amountMinor),
        [credit],
      );
      assert.equal(result.finalInvoice?.totalMinor, credit);
      assert.equal(result.finalInvoice?.amountDueMinor, 0, 'a negative total is nothing due');
      await handle.result();
      const state = await handle.query(getCustomerQuery);
      assert.equal(state.stage, 'cancelled');
      assert.equal(state.cancellation?.done, true);
      assert.equal((await db('entitlements').where({ brand_id: brand, customer_id: customerId }).first()).active, false);
      assert.equal((await db('subscriptions').where({ brand_id: brand, customer_id: customerId }).first()).status, 'cancelled');
      const final = (await invoicesOf(customerId)).find((i) => i.billing_key === 'final');
      assert.equal(final.kind, 'final');
      // The credit is the customer's: the ledger holds it as customer credit.
      const credits = await db('ledger_entries as e')
        .join('ledger_transactions as t', 't.id', 'e.transaction_id')
        .where({ 't.brand_id': brand, 't.document_id': final.id, 'e.account': 'customer_credit' })
        .sum({ s: 'e.amount_minor' })
        .first();
      assert.equal(Number(credits?.s), credit);
    });
  });

  it('cancels at the end of the period: usage billed in arrears, no renewal, then the workflow ends', async () => {
    await run(async ({ customerId, handle }) => {
      const period = (await handle.query(getCustomerQuery)).currentPeriod!;
      const result = await handle.executeUpdate(cancelUpdate, { args: [{ when: 'period_end' }] });
      assert.equal(result.stage, 'active');
      assert.equal(result.cancellation.effectiveAt, period.end);
      await assert.rejects(handle.executeUpdate(changePlanUpdate, { args: [{ plan: 'pro' }] }), failedWith('CANCELLATION_PENDING'));
      await db('usage_events').insert({
        brand_id: brand,
        customer_id: customerId,
        event_id: 'last',
        metric: 'api_calls',
        quantity: '3500',
        occurred_at: new Date(Date.parse(period.start) + DAY).toISOString(),
      });
      await handle.result();
      const invoices = await invoicesOf(customerId);
      assert.deepEqual(
        invoices.map((i) => i.billing_key),
        ['opening', 'final'],
      );
      // (3,500 − 1,000) × 0.0004 = 1.00, and no fee for a next period.
      assert.deepEqual(await linesOf(invoices[1].id), [
        ['usage', 'api_calls', 100],
        ['usage', 'storage_gb', 0],
      ]);
      assert.equal((await handle.query(getCustomerQuery)).stage, 'cancelled');
    }, 'metered');
  });
});
