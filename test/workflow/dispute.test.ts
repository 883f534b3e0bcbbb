import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createDisputeActivities } from '../../activities/disputes';
import { finalizeInvoice } from '../../data/invoices';
import { disputeByChargeback, openCustomerDispute } from '../../data/disputes';
import { recordCharge } from '../../data/payments';
import { billingPeriod, BillingPeriod } from '../../domain/period';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { chargebackClosedSignal, disputeDecisionUpdate, disputeWorkflow, getDisputeQuery } from '../../workflows/dispute';
import { CommunicationRequest, communicationWorkflowId, DisputeResolved, disputeWorkflowId } from '../../workflows/shared';
import { seedMeteredPlan, setPolicy } from '../support/fixtures';
import { TEST_WEBHOOK_SECRET, testSandboxGateway } from '../support/global';
import { testDb, timeSkippingEnvironment, uniqueId } from '../support/helpers';

const DAY = 86_400_000;
const STARTED_AT = '2026-10-01T00:00:00.000Z';

/**
 * The dispute workflow bundled with two stand-ins: a communication workflow that returns the
 * message it was asked to send (the real one is built elsewhere), and a parent that waits for
 * the dispute's `disputeResolved` signal and returns it. Generated into a temporary folder,
 * importing the compiled modules by absolute path, so the bundle holds one copy of each.
 */
async function disputeBundle(): Promise<WorkflowBundleWithSourceMap> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-dispute-wf-'));
  const file = path.join(dir, 'workflows.js');
  const mod = (m: string) => JSON.stringify(require.resolve(m));
  fs.writeFileSync(
    file,
    `import { condition, setHandler } from ${mod('@temporalio/workflow')};
import { disputeResolvedSignal } from ${mod('../../workflows/shared')};
export { disputeWorkflow } from ${mod('../../workflows/dispute')};
export async function communicationWorkflow(request) { return request; }
export async function parentStandIn() {
  let resolved;
  setHandler(disputeResolvedSignal, (r) => { resolved = resolved || r; });
  await condition(() => resolved !== undefined);
  return resolved;
}
`,
  );
  const noop = () => undefined;
  try {
    return await bundleWorkflowCode({
      workflowsPath: file,
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop },
      // The bundler's own entrypoint sits beside the generated file and imports the SDK by name.
      webpackConfigHook: (config) => ({
        ...config,
        resolve: { ...config.resolve, modules: [...(config.resolve?.modules ?? ['node_modules']), path.resolve(path.dirname(require.resolve('@temporalio/workflow')), '../../..')] },
      }),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('dispute workflow (time-skipping server, real activities, real PostgreSQL)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let db: Db;
  let brand: string;
  let bundle: WorkflowBundleWithSourceMap;
  const gateway = () => createSandboxGateway({ baseUrl: testSandboxGateway().url, webhookSecret: TEST_WEBHOOK_SECRET, timeoutMs: 2_000 });

  before(async function () {
    this.timeout(180_000);
    bundle = await disputeBundle();
    db = testDb();
    brand = uniqueId('dsp').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brand, name: 'Dispute tests', currency: 'USD', mode: 'sandbox' });
    await seedMeteredPlan(db, brand);
    await setPolicy(db, brand, 'disputes', {
      handlingCost: '0.50',
      maxAutoCreditsPerPeriod: '5.00',
      maxAutoCreditCountPerPeriod: 2,
      operatorDecisionDeadline: 'P7D',
      defaultDecision: 'accept',
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

  async function worker(taskQueue: string): Promise<Worker> {
    return Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: createDisputeActivities({ db, gateway: gateway() }) });
  }

  const period = (n: number): BillingPeriod => billingPeriod(STARTED_AT, 'P1M', n);

  /**
   * A customer on the metered plan whose period-1 invoice carries the 10.00 fee for period 2 and
   * a 0.04 line for 100 API calls above the 1,000 included (0.0004 each), finalized for real.
   */
  async function customerWithInvoice(): Promise<{ customerId: string; invoiceId: string; feeLine: number; microLine: number }> {
    const customerId = uniqueId('cus');
    await db('customers').insert({ brand_id: brand, id: customerId, email: `${customerId}@example.com`, stage: 'active', workflow_id: `customer-${brand}:${customerId}` });
    await db('usage_events').insert(
      [0, 1].map((i) => ({ brand_id: brand, customer_id: customerId, event_id: `e${i}`, metric: 'api_calls', quantity: '550', occurred_at: new Date(Date.parse(STARTED_AT) + (10 + i) * DAY) })),
    );
    const { invoiceId } = await finalizeInvoice(db, {
      brandId: brand,
      customerId,
      billingKey: 'period:1',
      kind: 'period',
      subscription: {
        planCode: 'metered',
        planVersion: 1,
        planName: 'Metered',
        currency: 'USD',
        listPriceMinor: 1000,
        discountPercent: 0,
        discountPeriods: null,
        billingPeriod: 'P1M',
        startedAt: STARTED_AT,
      },
      closingPeriod: period(1),
      advancePeriod: period(2),
      issuedAt: period(1).end,
    });
    const lines = await db('invoice_lines').where({ invoice_id: invoiceId }).select('position', 'kind', 'metric', 'amount_minor');
    const micro = lines.find((l) => l.metric === 'api_calls')!;
    assert.equal(Number(micro.amount_minor), 4, 'the API-call line is 0.04 USD');
    const fee = lines.find((l) => l.kind === 'recurring')!;
    return { customerId, invoiceId, feeLine: fee.position, microLine: micro.position };
  }

  /** Starts the parent stand-in and the dispute workflow as the customer workflow would. */
  async function startDispute(taskQueue: string, customerId: string, disputeId: string) {
    const parentWorkflowId = uniqueId('parent');
    const parent = await env.client.workflow.start('parentStandIn', { workflowId: parentWorkflowId, taskQueue, args: [] });
    const handle = await env.client.workflow.start(disputeWorkflow, {
      workflowId: disputeWorkflowId(brand, disputeId),
      taskQueue,
      args: [{ brandId: brand, customerId, disputeId, recipient: `${customerId}@example.com`, period: period(2), parentWorkflowId }],
    });
    return { handle, parent };
  }

  /** The message a dispute asked to send (awaits the stand-in's result: only once the dispute is over). */
  const message = (disputeId: string, key: string) =>
    env.client.workflow.getHandle(communicationWorkflowId(brand, `dispute:${disputeId}:${key}`)).result() as Promise<CommunicationRequest>;

  async function eventuallyStatus(handle: { query: (q: typeof getDisputeQuery) => Promise<{ status: string }> }, status: string): Promise<void> {
    for (let i = 0; i < 100; i += 1) {
      if ((await handle.query(getDisputeQuery)).status === status) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`the dispute never became ${status}`);
  }

  it('credits a 0.04 USD micro-line dispute at once, with no operator step, and tells the customer', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId, microLine } = await customerWithInvoice();
      const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: microLine, reason: 'I never made those calls' });
      assert.equal(dispute.amountMinor, 4);
      const { handle, parent } = await startDispute(taskQueue, customerId, dispute.id);

      const result = await handle.result();
      assert.deepEqual(result, { disputeId: dispute.id, outcome: 'credited', creditedMinor: 4 });
      assert.deepEqual(await parent.result(), result);
      const state = await handle.query(getDisputeQuery);
      assert.equal(state.autoDecision, 'auto_credit');
      assert.equal(state.resolution, 'auto');
      assert.equal(state.decisionDeadline, null, 'no operator was asked');

      const row = await db('disputes').where({ id: dispute.id }).first();
      assert.equal(row.status, 'resolved');
      assert.equal(row.outcome, 'credited');
      assert.equal(Number(row.credited_minor), 4);
      const note = await db('invoices').where({ id: row.credit_note_id }).first();
      assert.equal(note.kind, 'credit_note');
      assert.equal(note.corrects_invoice_id, invoiceId);
      assert.equal(Number(note.total_minor), -4);
      const ledger = await db('ledger_transactions').where({ brand_id: brand, kind: 'credit_note', document_id: note.id });
      assert.equal(ledger.length, 1);

      const told = await message(dispute.id, 'resolved');
      assert.equal(told.template, 'dispute-resolved');
      assert.equal(told.recipient, `${customerId}@example.com`);
      assert.deepEqual(told.data.credited, { minor: 4, currency: 'USD', amount: '0.04' });
      await assert.rejects(env.client.workflow.getHandle(communicationWorkflowId(brand, `dispute:${dispute.id}:escalated`)).describe(), { name: 'WorkflowNotFoundError' });
    });
  });

  it("escalates a large dispute and credits what the operator accepts", async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId, feeLine } = await customerWithInvoice();
      const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: feeLine, reason: 'the service was down for a week' });
      assert.equal(dispute.amountMinor, 1000);
      const { handle, parent } = await startDispute(taskQueue, customerId, dispute.id);
      await eventuallyStatus(handle, 'escalated');

      const state = await handle.query(getDisputeQuery);
      assert.equal(state.autoDecision, 'above_handling_cost');
      assert.equal(state.rule, 'not_a_usage_line');
      assert.equal(Date.parse(state.decisionDeadline!) > Date.now() + 6 * DAY, true);
      const escalatedRow = await db('disputes').where({ id: dispute.id }).first();
      assert.equal(escalatedRow.status, 'escalated');
      assert.equal(escalatedRow.evidence.line.kind, 'recurring');
      // describe(), not result(): awaiting a result lets the test server skip past the deadline.
      const escalatedMessage = await env.client.workflow.getHandle(communicationWorkflowId(brand, `dispute:${dispute.id}:escalated`)).describe();
      assert.equal(escalatedMessage.type, 'communicationWorkflow');

      await assert.rejects(
        handle.executeUpdate(disputeDecisionUpdate, { args: [{ decision: 'accept', amountMinor: 1001 }] }),
        (err: any) => String(err.cause?.message ?? err.message).startsWith('DECISION_EXCEEDS_DISPUTE:'),
      );
      const decided = await handle.executeUpdate(disputeDecisionUpdate, { args: [{ decision: 'accept', amountMinor: 250, note: 'a quarter of the fee' }] });
      assert.equal(decided.status, 'resolved');
      assert.equal(decided.outcome, 'credited');
      assert.equal(decided.creditedMinor, 250);
      assert.deepEqual(await handle.result(), { disputeId: dispute.id, outcome: 'credited', creditedMinor: 250 });
      assert.deepEqual(await parent.result(), { disputeId: dispute.id, outcome: 'credited', creditedMinor: 250 });

      const row = await db('disputes').where({ id: dispute.id }).first();
      assert.equal(row.resolution, 'operator');
      assert.deepEqual(row.decision, { decision: 'accept', amountMinor: 250, note: 'a quarter of the fee' });
      assert.equal(Number((await db('invoices').where({ id: row.credit_note_id }).first()).total_minor), -250);
      await assert.rejects(
        handle.executeUpdate(disputeDecisionUpdate, { args: [{ decision: 'reject' }] }),
        // The run has completed: the server refuses the update outright.
        (err: any) => ['WorkflowUpdateFailedError', 'WorkflowNotFoundError'].includes(err.name),
      );
    });
  });

  it("writes no credit note when the operator rejects a large dispute", async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId, feeLine } = await customerWithInvoice();
      const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: feeLine, reason: 'too expensive' });
      const { handle } = await startDispute(taskQueue, customerId, dispute.id);
      await eventuallyStatus(handle, 'escalated');
      const decided = await handle.executeUpdate(disputeDecisionUpdate, { args: [{ decision: 'reject', note: 'the fee was agreed' }] });
      assert.equal(decided.outcome, 'rejected');
      assert.deepEqual(await handle.result(), { disputeId: dispute.id, outcome: 'rejected', creditedMinor: 0 });
      const row = await db('disputes').where({ id: dispute.id }).first();
      assert.equal(row.credit_note_id, null);
      assert.equal((await db('invoices').where({ corrects_invoice_id: invoiceId })).length, 0);
      assert.equal((await message(dispute.id, 'resolved')).data.outcome, 'rejected');
    });
  });

  it("applies the policy's default decision when no operator decides by the deadline", async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId } = await customerWithInvoice();
      const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, reason: 'I cancelled before this invoice' });
      assert.equal(dispute.amountMinor, 1004, 'the whole invoice');
      const { handle } = await startDispute(taskQueue, customerId, dispute.id);
      const result = await handle.result(); // skips the seven days
      assert.deepEqual(result, { disputeId: dispute.id, outcome: 'credited', creditedMinor: 1004 });
      const row = await db('disputes').where({ id: dispute.id }).first();
      assert.equal(row.resolution, 'default');
      assert.equal(row.decision.decision, 'accept');
      assert.equal(Number((await db('invoices').where({ id: row.credit_note_id }).first()).total_minor), -1004);
    });
  });

  it('escalates the micro-dispute beyond the per-period cap of automatic credits', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId, microLine } = await customerWithInvoice();
      const outcomes: string[] = [];
      for (let n = 1; n <= 3; n += 1) {
        const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: microLine, amountMinor: 1, reason: `call batch ${n} was not mine` });
        const { handle } = await startDispute(taskQueue, customerId, dispute.id);
        if (n < 3) {
          assert.equal((await handle.result()).outcome, 'credited');
          outcomes.push((await handle.query(getDisputeQuery)).autoDecision!);
        } else {
          await eventuallyStatus(handle, 'escalated');
          outcomes.push((await handle.query(getDisputeQuery)).autoDecision!);
          await handle.executeUpdate(disputeDecisionUpdate, { args: [{ decision: 'reject', note: 'third claim this month' }] });
          assert.equal((await handle.result()).outcome, 'rejected');
        }
      }
      assert.deepEqual(outcomes, ['auto_credit', 'auto_credit', 'auto_credit_count_cap']);
      const credited = await db('disputes').where({ brand_id: brand, customer_id: customerId, outcome: 'credited' });
      assert.equal(credited.length, 2);
    });
  });

  it('beyond the cap, credits by evidence a usage line with no usage event behind it', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId, microLine } = await customerWithInvoice();
      // The calls were billed, but their events are gone: nothing supports the line.
      await db('usage_events').where({ brand_id: brand, customer_id: customerId }).del();
      const results: Array<{ autoDecision: string | null; rule: string | null; resolution: string | null }> = [];
      for (let n = 1; n <= 3; n += 1) {
        const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: microLine, amountMinor: 1, reason: `call batch ${n}` });
        const { handle } = await startDispute(taskQueue, customerId, dispute.id);
        assert.equal((await handle.result()).outcome, 'credited');
        const { autoDecision, rule, resolution } = await handle.query(getDisputeQuery);
        results.push({ autoDecision, rule, resolution });
      }
      assert.deepEqual(results[2], { autoDecision: 'auto_credit_count_cap', rule: 'no_usage_behind_line', resolution: 'rule' });
      const third = await db('disputes').where({ brand_id: brand, customer_id: customerId, resolution: 'rule' }).first();
      assert.equal(third.evidence.usage.events, 0);
      assert.equal(third.evidence.line.metric, 'api_calls');
    });
  });

  it('counts concurrent micro-disputes of one customer against the cap one at a time', async () => {
    const { customerId, invoiceId, microLine } = await customerWithInvoice();
    const ids: string[] = [];
    for (let n = 1; n <= 4; n += 1) {
      ids.push((await openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: microLine, amountMinor: 1, reason: `call ${n}` })).dispute.id);
    }
    const activities = createDisputeActivities({ db, gateway: gateway() });
    const figures = { handlingCostMinor: 50, maxAutoCreditsMinor: 500, maxAutoCreditCount: 2 };
    const decide = (disputeId: string) => activities.decideDisputeAutomatically({ brandId: brand, disputeId, periodKey: 'period:2:test', figures });
    const decisions = await Promise.all(ids.map(decide));
    assert.equal(decisions.filter((d) => d.action === 'auto_credit').length, 2);
    assert.deepEqual(await Promise.all(ids.map(decide)), decisions, 'a repeated decision is the recorded one');
    await assert.rejects(
      openCustomerDispute(db, { brandId: brand, customerId, invoiceId, line: microLine, amountMinor: 1, reason: 'one more' }),
      (err: any) => err.type === 'EXCEEDS_DISPUTABLE' && err.disputableMinor === 0,
      'the four open disputes claim the whole 0.04 line',
    );
  });

  it('opens a dispute for a chargeback, submits evidence to the gateway before its deadline, and ends with the verdict', async () => {
    const taskQueue = uniqueId('tq');
    await (await worker(taskQueue)).runUntil(async () => {
      const { customerId, invoiceId } = await customerWithInvoice();
      const gw = gateway();
      const charged = await gw.charge({ amountMinor: 1004, currency: 'USD', paymentMethod: 'tok_chargeback', idempotencyKey: uniqueId('charge'), metadata: { invoiceId } });
      assert.equal(charged.status, 'succeeded');
      const { paymentId } = await recordCharge(db, {
        brandId: brand,
        customerId,
        invoiceId,
        idempotencyKey: uniqueId('pay'),
        gateway: 'sandbox',
        status: 'succeeded',
        gatewayPaymentId: charged.paymentId,
        amountMinor: 1004,
        currency: 'USD',
      });
      let chargebackId: string | null = null;
      for (let i = 0; i < 50 && !chargebackId; i += 1) {
        chargebackId = testSandboxGateway().charges().find((c) => c.id === charged.paymentId)?.dispute ?? null;
        if (!chargebackId) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(chargebackId, 'the sandbox opened a chargeback');

      const activities = createDisputeActivities({ db, gateway: gw });
      const chargeback = { chargebackId, paymentId, invoiceId, amountMinor: 1004, currency: 'USD', reason: 'fraudulent', evidenceDueBy: new Date(Date.now() + 7 * DAY).toISOString() };
      const opened = await activities.openChargebackDispute({ brandId: brand, customerId, chargeback });
      assert.deepEqual(await activities.openChargebackDispute({ brandId: brand, customerId, chargeback }), opened, 'idempotent by chargeback id');

      const { handle, parent } = await startDispute(taskQueue, customerId, opened.disputeId);
      await eventuallyStatus(handle, 'awaiting_gateway');
      const atGateway = testSandboxGateway().disputes().find((d) => d.id === chargebackId)!;
      assert.equal(atGateway.status, 'under_review');
      const evidence = atGateway.evidence as Record<string, string>;
      assert.equal(evidence.customer_email_address, `${customerId}@example.com`);
      assert.match(String(evidence.uncategorized_text), /1 succeeded \(USD 10\.04\)/);
      const row = await db('disputes').where({ id: opened.disputeId }).first();
      assert.equal(row.kind, 'chargeback');
      assert.ok(row.evidence_submitted_at);

      // The card network decides; the gateway's charge.dispute.closed webhook carries it to the workflow.
      const closed = await fetch(`${testSandboxGateway().url}/v1/_sandbox/disputes/${chargebackId}/close`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ status: 'won' }),
      });
      assert.equal(closed.status, 200);
      assert.ok(testSandboxGateway().events().some((e) => e.type === 'charge.dispute.closed' && e.data.object.id === chargebackId));
      assert.equal((await disputeByChargeback(db, brand, chargebackId))?.id, opened.disputeId);
      await handle.signal(chargebackClosedSignal, { outcome: 'won' });
      const result: DisputeResolved = await handle.result();
      assert.deepEqual(result, { disputeId: opened.disputeId, outcome: 'won', creditedMinor: 0 });
      assert.deepEqual(await parent.result(), result);
      const resolved = await db('disputes').where({ id: opened.disputeId }).first();
      assert.equal(resolved.status, 'resolved');
      assert.equal(resolved.resolution, 'gateway');
      // The money the gateway took back, then returned once the chargeback was won.
      const booked = await db('ledger_transactions as t')
        .join('ledger_entries as e', 'e.transaction_id', 't.id')
        .where({ 't.brand_id': brand, 't.document_id': opened.disputeId, 'e.account': 'gateway_clearing' })
        .select('t.kind', 'e.amount_minor');
      assert.deepEqual(
        booked.map((b) => [b.kind, Number(b.amount_minor)]).sort(),
        [
          ['chargeback', -1004],
          ['chargeback_reversal', 1004],
        ],
      );
    });
  });
});
