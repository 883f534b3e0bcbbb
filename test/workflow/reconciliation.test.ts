import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { postTransaction } from '../../data/ledger';
import { recordCharge } from '../../data/payments';
import { refundPayment } from '../../data/refunds';
import { customerWorkflowId } from '../../domain/ids';
import { previousUtcDay } from '../../domain/reconciliation';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { sandboxFeeMinor } from '../../gateway/sandbox-server';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { customerWorkflow } from '../../workflows/customer';
import { reconciliationWorkflow, ReconciliationWorkflowInput } from '../../workflows/reconciliation';
import { activateUpdate } from '../../workflows/shared';
import { seedPlans } from '../support/fixtures';
import { TEST_WEBHOOK_SECRET, testSandboxGateway } from '../support/global';
import { testActivities, testCredential, testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const hex = () => crypto.randomBytes(16).toString('hex');

/**
 * A day's settlement report from the run's sandbox gateway (a real HTTP service, real clock)
 * against real payments: one customer signed up through the customer workflow and paid, and one
 * of each mismatch injected — a charge the gateway made that we never recorded, a payment of
 * ours with a gateway id the gateway never issued, a payment recorded at another amount than
 * charged, and a payment we dated yesterday that the gateway settles today.
 */
describe('reconciliation (time-skipping server, sandbox gateway)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let db: Db;
  let brand: string;
  let invoiceNumber = 900_000;
  const gateway = () => createSandboxGateway({ baseUrl: testSandboxGateway().url, webhookSecret: TEST_WEBHOOK_SECRET, timeoutMs: 5_000 });

  before(async function () {
    this.timeout(180_000);
    await workflowBundle();
    db = testDb();
    brand = uniqueId('rec').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brand, name: 'Reconciliation tests', currency: 'USD', mode: 'sandbox' });
    await db('brands').where({ id: brand }).update({ settings: JSON.stringify({ operatorEmail: 'finance@rec.test' }) });
    await seedPlans(db, brand);
  });
  beforeEach(async function () {
    this.timeout(60_000);
    env = await timeSkippingEnvironment();
  });
  afterEach(async () => env?.teardown());
  after(async () => db?.destroy());

  /** A finalized invoice with its ledger transaction (DR receivables, CR revenue), as billing writes one. */
  async function openInvoice(customerId: string, amountMinor: number): Promise<string> {
    const id = `inv_${hex()}`;
    invoiceNumber += 1;
    await db.transaction(async (trx) => {
      await trx('invoices').insert({
        id,
        brand_id: brand,
        customer_id: customerId,
        number: invoiceNumber,
        billing_key: `fixture:${id}`,
        kind: 'period',
        status: 'finalized',
        currency: 'USD',
        subtotal_minor: amountMinor,
        discount_minor: 0,
        tax_minor: 0,
        tax_rate: 0,
        tax_inclusive: false,
        credit_applied_minor: 0,
        total_minor: amountMinor,
        amount_due_minor: amountMinor,
        issued_at: new Date(),
        due_at: new Date(),
      });
      await postTransaction(trx, {
        brandId: brand,
        customerId,
        kind: 'invoice',
        documentId: id,
        currency: 'USD',
        entries: [
          { account: 'receivables', amountMinor },
          { account: 'revenue', amountMinor: -amountMinor },
        ],
      });
    });
    return id;
  }

  /** A charge at the gateway carrying the brand's metadata, as collections makes one. */
  async function gatewayCharge(customerId: string, invoiceId: string, amountMinor: number): Promise<string> {
    const result = await gateway().charge({
      amountMinor,
      currency: 'USD',
      paymentMethod: 'tok_visa',
      idempotencyKey: `${invoiceId}:fixture`,
      metadata: { brandId: brand, customerId, invoiceId },
    });
    assert.equal(result.status, 'succeeded');
    return result.paymentId!;
  }

  async function ourPayment(customerId: string, invoiceId: string, amountMinor: number, gatewayPaymentId: string): Promise<string> {
    const { paymentId } = await recordCharge(db, {
      brandId: brand,
      customerId,
      invoiceId,
      idempotencyKey: `${invoiceId}:fixture`,
      gateway: 'sandbox',
      status: 'succeeded',
      gatewayPaymentId,
      amountMinor,
      currency: 'USD',
    });
    return paymentId;
  }

  it('flags every injected mismatch, records the payout net of fees, resolves the timing difference and re-runs a day in place', async () => {
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    await worker.runUntil(async () => {
      const today = new Date().toISOString().slice(0, 10);
      const yesterday = previousUtcDay(new Date());
      const run = (input: Omit<ReconciliationWorkflowInput, 'brandId' | 'gateway'>) =>
        env.client.workflow.execute(reconciliationWorkflow, { workflowId: uniqueId('reconciliation'), taskQueue, args: [{ brandId: brand, gateway: 'sandbox', ...input }] });

      // A real customer: signed up through its workflow, its opening invoice charged by collections.
      const customerId = uniqueId('cus');
      const handle = await env.client.workflow.start(customerWorkflow, {
        workflowId: customerWorkflowId(brand, customerId),
        taskQueue,
        args: [{ brandId: brand, customerId, email: `${customerId}@example.com` }],
      });
      const activation = await handle.executeUpdate(activateUpdate, {
        args: [{ plan: 'pro', paymentMethod: 'tok_visa', credential: testCredential() }],
      });
      assert.equal(activation.stage, 'active');
      const paid = await db('payments').where({ brand_id: brand, customer_id: customerId, status: 'succeeded' });
      assert.equal(paid.length, 1);
      const realPayment = { id: paid[0].id as string, gatewayId: paid[0].gateway_payment_id as string, amount: Number(paid[0].amount_minor) };
      // Time skips while the test waits on reconciliations; the customer's next periods must not bill meanwhile.
      await handle.terminate('reconciliation test: one paid invoice is all it needs');

      // The injected cases, each on its own invoice so the ledger stays whole.
      const other = uniqueId('cus');
      const lateInvoice = await openInvoice(other, 1500);
      const lateCharge = await gatewayCharge(other, lateInvoice, 1500);
      const latePayment = await ourPayment(other, lateInvoice, 1500, lateCharge);
      // We recorded it a moment before midnight; the gateway dates it today.
      await db('payments').where({ id: latePayment }).update({ created_at: new Date(`${yesterday}T23:59:30.000Z`) });

      const unrecordedInvoice = await openInvoice(other, 1700);
      const unrecordedCharge = await gatewayCharge(other, unrecordedInvoice, 1700);

      const phantomInvoice = await openInvoice(other, 1900);
      const phantomGatewayId = `ch_${hex()}`;
      const phantomPayment = await ourPayment(other, phantomInvoice, 1900, phantomGatewayId);

      const mismatchInvoice = await openInvoice(other, 2500);
      const mismatchCharge = await gatewayCharge(other, mismatchInvoice, 2500);
      const mismatchPayment = await ourPayment(other, mismatchInvoice, 2400, mismatchCharge);

      // The scheduled run (no date): yesterday, where only the late payment is dated.
      const first = await run({});
      assert.equal(first.reportDate, yesterday);
      const yesterdayRun = first.runId;
      let items = await db('reconciliation_items').where({ run_id: yesterdayRun });
      assert.deepEqual(
        items.map((i) => [i.kind, i.our_record_id]),
        [['timing_difference', latePayment]],
      );
      assert.equal(items[0].detail.expectedOn, today);
      assert.equal(items[0].resolved_by_run_id, null);
      assert.equal(first.mismatches, 0);
      assert.equal(first.operatorsNotified, false, 'a timing difference alone is no mismatch');
      assert.deepEqual(first.payouts, []);

      // Today's run: the report carries the late payment, so yesterday's timing difference closes.
      const second = await run({ reportDate: today });
      const todayRun = second.runId;
      const unclaimed = (await db('reconciliation_runs').where({ id: todayRun }).first()).counts.unclaimedLines as number;
      items = await db('reconciliation_items').where({ run_id: todayRun }).orderBy('id');
      const kindOf = (pred: (i: any) => boolean) => items.filter(pred).map((i) => i.kind);
      assert.deepEqual(kindOf((i) => i.our_record_id === realPayment.id), ['matched']);
      assert.deepEqual(kindOf((i) => i.our_record_id === latePayment), ['matched']);
      assert.deepEqual(kindOf((i) => i.line_id === unrecordedCharge), ['missing_ours']);
      assert.deepEqual(kindOf((i) => i.our_record_id === phantomPayment), ['missing_gateway']);
      const mismatch = items.find((i) => i.our_record_id === mismatchPayment);
      assert.equal(mismatch.kind, 'amount_mismatch');
      assert.equal(mismatch.line_id, mismatchCharge);
      assert.equal(Number(mismatch.report_amount_minor), 2500);
      assert.equal(Number(mismatch.our_amount_minor), 2400);
      assert.equal(mismatch.detail.differenceMinor, 100);
      assert.equal(second.counts.matched, 2);
      assert.equal(second.counts.missing_ours, 1 + unclaimed, "lines no brand claims are reported too");
      assert.equal(second.counts.missing_gateway, 1);
      assert.equal(second.counts.amount_mismatch, 1);
      assert.equal(second.counts.timing_difference, 0);
      assert.equal(second.mismatches, 3 + unclaimed);
      assert.equal(items.length, second.counts.lines + 1, 'every line in one item, plus the record the gateway lacks');
      assert.equal(second.timingDifferencesResolved, 1);
      const resolved = await db('reconciliation_items').where({ run_id: yesterdayRun }).first();
      assert.equal(resolved.resolved_by_run_id, todayRun);

      // The payout: the brand's lines, net of the gateway's fees, booked balanced.
      const amounts = [realPayment.amount, 1500, 1700, 2500];
      const gross = amounts.reduce((s, a) => s + a, 0);
      const fees = amounts.reduce((s, a) => s + sandboxFeeMinor(a), 0);
      const payouts = await db('payouts').where({ brand_id: brand }).select('*', db.raw('report_date::text as day'));
      assert.equal(payouts.length, 1);
      assert.deepEqual(
        [payouts[0].day, payouts[0].gateway, Number(payouts[0].gross_minor), Number(payouts[0].fees_minor), Number(payouts[0].net_minor)],
        [today, 'sandbox', gross, fees, gross - fees],
      );
      assert.deepEqual(second.payouts, [{ payoutId: payouts[0].id, currency: 'USD', grossMinor: gross, feesMinor: fees, netMinor: gross - fees, posted: 'payout' }]);
      const payoutTxns = await db('ledger_transactions').where({ brand_id: brand }).whereIn('kind', ['payout', 'payout_adjustment']);
      assert.deepEqual(
        payoutTxns.map((t) => [t.kind, t.document_id]),
        [['payout', payouts[0].id]],
      );
      const entries = await db('ledger_entries').where({ transaction_id: payoutTxns[0].id }).orderBy('account');
      assert.deepEqual(
        entries.map((e) => [e.account, Number(e.amount_minor)]),
        [
          ['cash', gross - fees],
          ['gateway_clearing', -gross],
          ['gateway_fees', fees],
        ],
      );

      // Operators hear about the mismatches once per run, at the brand's operator address.
      assert.equal(second.operatorsNotified, true);
      const messages = () => db('outbound_messages').where({ brand_id: brand, category: 'operator' });
      let sent = await messages();
      assert.equal(sent.length, 1);
      assert.deepEqual(
        [sent[0].template, sent[0].recipient, sent[0].dedupe_key, sent[0].data.runId, sent[0].data.mismatches],
        ['reconciliation-mismatches', 'finance@rec.test', `reconciliation-mismatches:${todayRun}`, todayRun, 3 + unclaimed],
      );

      // Re-running today updates the same run: same items, one payout, one posting, one message.
      const again = await run({ reportDate: today });
      assert.equal(again.runId, todayRun);
      assert.deepEqual(again.counts, second.counts);
      assert.equal(await db('reconciliation_items').where({ run_id: todayRun }).count({ n: '*' }).then((r) => Number(r[0]!.n)), items.length);
      assert.equal((await db('payouts').where({ brand_id: brand })).length, 1);
      assert.deepEqual(again.payouts.map((p) => p.posted), ['none']);
      assert.equal((await db('ledger_transactions').where({ brand_id: brand }).whereIn('kind', ['payout', 'payout_adjustment'])).length, 1);
      sent = await messages();
      assert.equal(sent.length, 1);

      // Re-running yesterday keeps its timing difference, still resolved by today's run.
      const yesterdayAgain = await run({ reportDate: yesterday });
      assert.equal(yesterdayAgain.runId, yesterdayRun);
      const kept = await db('reconciliation_items').where({ run_id: yesterdayRun });
      assert.deepEqual(
        kept.map((i) => [i.kind, i.our_record_id, i.resolved_by_run_id]),
        [['timing_difference', latePayment, todayRun]],
      );

      // A line that reaches today's report late: the re-run books only the difference, as the payout's next version.
      const lateLineInvoice = await openInvoice(other, 800);
      await gatewayCharge(other, lateLineInvoice, 800);
      const later = await run({ reportDate: today });
      assert.equal(later.runId, todayRun);
      assert.equal(later.counts.missing_ours, second.counts.missing_ours + 1);
      assert.deepEqual(
        later.payouts.map((p) => [p.posted, p.grossMinor, p.feesMinor]),
        [['adjustment', gross + 800, fees + sandboxFeeMinor(800)]],
      );
      const [payout] = await db('payouts').where({ brand_id: brand });
      assert.equal(payout.version, 2);
      const adjustment = await db('ledger_transactions').where({ brand_id: brand, kind: 'payout_adjustment' }).first();
      assert.equal(adjustment.document_id, `${payout.id}:v2`);
      const adjusted = await db('ledger_entries').where({ transaction_id: adjustment.id }).orderBy('account');
      assert.deepEqual(
        adjusted.map((e) => [e.account, Number(e.amount_minor)]),
        [
          ['cash', 800 - sandboxFeeMinor(800)],
          ['gateway_clearing', -800],
          ['gateway_fees', sandboxFeeMinor(800)],
        ],
      );
      sent = await messages();
      assert.equal(sent.length, 1, 'still one message for the run');
      assert.equal(sent[0].data.mismatches, later.mismatches, 'the queued message carries the latest figures');

      const runs = await db('reconciliation_runs').where({ brand_id: brand });
      assert.equal(runs.length, 2, 'one run per day, however often it runs');
      assert.ok(runs.every((r) => r.status === 'completed'));
    });
  });

  it('matches a refund on the report to our refund, and books it out of the payout', async () => {
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    const refundBrand = `${brand.slice(0, 36)}-rf`;
    await ensureBrand(db, { id: refundBrand, name: 'Refund reconciliation', currency: 'USD', mode: 'sandbox' });
    const saved = brand;
    brand = refundBrand;
    try {
      await worker.runUntil(async () => {
        const today = new Date().toISOString().slice(0, 10);
        const customerId = uniqueId('cus');
        const invoiceId = await openInvoice(customerId, 3000);
        const chargeId = await gatewayCharge(customerId, invoiceId, 3000);
        const paymentId = await ourPayment(customerId, invoiceId, 3000, chargeId);
        // Remittance's own refund path: through the gateway, recorded with its ledger transaction.
        const { refund } = await refundPayment(db, gateway(), { brandId: brand, paymentId, amountMinor: 1000, reason: 'goodwill', idempotencyKey: `${invoiceId}:refund` });
        assert.equal(refund.status, 'succeeded');
        const refundId = refund.id;
        const result = await env.client.workflow.execute(reconciliationWorkflow, {
          workflowId: uniqueId('reconciliation'),
          taskQueue,
          args: [{ brandId: brand, gateway: 'sandbox', reportDate: today }],
        });
        const items = await db('reconciliation_items').where({ run_id: result.runId });
        const refundItem = items.find((i) => i.line_id === refund.gateway_refund_id);
        assert.deepEqual(
          [refundItem.kind, refundItem.our_record_type, refundItem.our_record_id, Number(refundItem.report_amount_minor), Number(refundItem.our_amount_minor)],
          ['matched', 'refund', refundId, -1000, -1000],
        );
        assert.equal(items.find((i) => i.our_record_id === paymentId).kind, 'matched');
        assert.deepEqual(
          result.payouts.map((p) => [p.grossMinor, p.feesMinor, p.netMinor]),
          [[2000, sandboxFeeMinor(3000), 2000 - sandboxFeeMinor(3000)]],
        );
      });
    } finally {
      brand = saved;
    }
  });

  it('marks the run failed, not silently missing, when the gateway stays down, and refuses a wrong gateway or day up front', async () => {
    const taskQueue = uniqueId('tq');
    const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
    await worker.runUntil(async () => {
      const execute = (input: Omit<ReconciliationWorkflowInput, 'brandId'>) =>
        env.client.workflow.execute(reconciliationWorkflow, { workflowId: uniqueId('reconciliation'), taskQueue, args: [{ brandId: brand, ...input }] });
      await assert.rejects(execute({ gateway: 'stripe', reportDate: '2026-11-01' }), (e: any) => e.cause?.cause?.type === 'WRONG_GATEWAY');
      await assert.rejects(execute({ gateway: 'sandbox', reportDate: '2026-02-30' }), (e: any) => e.cause?.cause?.type === 'INVALID_REPORT_DATE');
      assert.equal((await db('reconciliation_runs').where({ brand_id: brand, report_date: '2026-11-01' })).length, 0);

      const outage = (requests: number) =>
        fetch(`${testSandboxGateway().url}/v1/_sandbox/outage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ requests }) });
      await outage(1_000);
      try {
        await assert.rejects(execute({ gateway: 'sandbox', reportDate: '2026-10-01' }), (e: any) => e.cause?.cause?.type === 'GATEWAY_UNAVAILABLE');
      } finally {
        await outage(0);
      }
      const failed = await db('reconciliation_runs').where({ brand_id: brand, report_date: '2026-10-01' }).first();
      assert.equal(failed.status, 'failed');
      assert.match(failed.error, /503|outage|unavailable/i);
    });
  });
});
