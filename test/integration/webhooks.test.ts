import assert from 'node:assert/strict';
import { finalizeInvoice } from '../../data/invoices';
import { customerCreditMinor } from '../../data/ledger';
import { invoiceBalanceMinor } from '../../data/payments';
import { customerWorkflowId } from '../../domain/ids';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { signatureHeader } from '../../gateway/webhook-signature';
import { WEBHOOK_PATH } from '../../api/webhooks';
import { seedPlans } from '../support/fixtures';
import { TEST_WEBHOOK_SECRET, testSandboxGateway } from '../support/global';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Gateway webhooks in, over HTTP from the run's real sandbox gateway to the real API: signature
 * and replay-window checks that write nothing, de-duplication by event id, a chargeback reaching
 * the customer's workflow, and late payments (partial, then over the balance) recorded as
 * remittance, the excess becoming credit that the next invoice uses.
 */
describe('gateway webhooks (integration, dev server)', function () {
  this.timeout(90_000);
  let stack: Stack;
  let brand: { id: string; key: string };
  const gateway = () => createSandboxGateway({ baseUrl: testSandboxGateway().url, webhookSecret: TEST_WEBHOOK_SECRET });

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brand = await stack.brand();
    await seedPlans(stack.db, brand.id);
    testSandboxGateway().setWebhookUrl(`${stack.url}${WEBHOOK_PATH}`);
  });

  after(async () => {
    testSandboxGateway().setWebhookUrl(undefined);
    await stack?.stop();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const settlementEvent = (id = uniqueId('evt')) =>
    JSON.stringify({ id, type: 'settlement.report_ready', created: new Date().toISOString(), data: { object: { object: 'settlement_report', date: '2026-11-25' } } });

  async function deliver(body: string, signature: string | undefined) {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (signature !== undefined) headers['sandbox-signature'] = signature;
    const res = await fetch(`${stack.url}${WEBHOOK_PATH}`, { method: 'POST', headers, body });
    return { status: res.status, json: (await res.json()) as any };
  }
  const stored = async (eventId: string) => stack.db('webhook_events').where({ gateway: 'sandbox', event_id: eventId });

  describe('refuses deliveries that do not verify, and writes nothing', () => {
    const cases: Array<[string, (body: string, id: string) => { body: string; signature: string | undefined }, string]> = [
      ['a signature made with another secret', (body) => ({ body, signature: signatureHeader('whsec_wrong', body, now()) }), 'WEBHOOK_SIGNATURE_INVALID'],
      ['no signature', (body) => ({ body, signature: undefined }), 'WEBHOOK_SIGNATURE_INVALID'],
      ['a malformed signature header', (body) => ({ body, signature: 'v1=abc' }), 'WEBHOOK_SIGNATURE_INVALID'],
      [
        'a body changed after signing',
        (body) => ({ body: body.replace('2026-11-25', '2026-11-26'), signature: signatureHeader(TEST_WEBHOOK_SECRET, body, now()) }),
        'WEBHOOK_SIGNATURE_INVALID',
      ],
      ['a valid signature ten minutes old', (body) => ({ body, signature: signatureHeader(TEST_WEBHOOK_SECRET, body, now() - 600) }), 'WEBHOOK_TIMESTAMP_OUTSIDE_WINDOW'],
    ];
    for (const [what, make, code] of cases) {
      it(`answers 400 ${code} to ${what}`, async () => {
        const id = uniqueId('evt');
        const { body, signature } = make(settlementEvent(id), id);
        const res = await deliver(body, signature);
        assert.equal(res.status, 400, JSON.stringify(res.json));
        assert.equal(res.json.error.code, code);
        assert.equal(res.json.error.details[0].field, 'header.sandbox-signature');
        assert.equal((await stored(id)).length, 0);
      });
    }

    it('answers 400 naming the body to a signed body that is not an event', async () => {
      const body = JSON.stringify({ hello: 'world' });
      const res = await deliver(body, signatureHeader(TEST_WEBHOOK_SECRET, body, now()));
      assert.equal(res.status, 400);
      assert.equal(res.json.error.code, 'WEBHOOK_PAYLOAD_INVALID');
      assert.equal(res.json.error.details[0].field, 'body');
    });

    it('needs no API key, and an API key does not replace the signature', async () => {
      const res = await fetch(`${stack.url}${WEBHOOK_PATH}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${brand.key}` },
        body: settlementEvent(),
      });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as any).error.code, 'WEBHOOK_SIGNATURE_INVALID');
    });
  });

  it('processes the same event once when it is delivered twice', async () => {
    const id = uniqueId('evt');
    const body = settlementEvent(id);
    const first = await deliver(body, signatureHeader(TEST_WEBHOOK_SECRET, body, now()));
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.deepEqual(first.json, { received: true, duplicate: false, outcome: 'settlement_stored' });
    const again = await deliver(body, signatureHeader(TEST_WEBHOOK_SECRET, body, now()));
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, { received: true, duplicate: true, outcome: 'settlement_stored' });
    const rows = await stored(id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].type, 'settlement.ready');
    assert.ok(rows[0].processed_at);
  });

  it('stores an event of a type it does not act on, and answers 200', async () => {
    const id = uniqueId('evt');
    const body = JSON.stringify({ id, type: 'payout.paid', created: new Date().toISOString(), data: { object: { amount: 1 } } });
    const res = await deliver(body, signatureHeader(TEST_WEBHOOK_SECRET, body, now()));
    assert.equal(res.status, 200);
    assert.equal(res.json.outcome, 'ignored');
    assert.equal((await stored(id))[0].type, 'other');
  });

  it("signals the customer's workflow when the gateway reports a chargeback", async () => {
    const id = uniqueId('cus');
    const signup = await stack.call('POST', '/v1/customers', {
      key: brand.key,
      body: { id, email: 'disputer@example.com', plan: 'starter', paymentMethod: 'tok_chargeback' },
    });
    assert.equal(signup.status, 201, signup.text);
    const payment = await eventually(async () => stack.db('payments').where({ brand_id: brand.id, customer_id: id, status: 'succeeded' }).first());
    // The sandbox disputes a tok_chargeback payment 500 ms after it; its webhook signals the workflow.
    const handle = stack.env.client.workflow.getHandle(customerWorkflowId(brand.id, id));
    const signal = await eventually(async () => {
      const history = await handle.fetchHistory();
      return history.events?.find((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'chargeback');
    }, 20_000);
    const payloads = signal.workflowExecutionSignaledEventAttributes!.input!.payloads!;
    const notice = JSON.parse(Buffer.from(payloads[0]!.data!).toString('utf8'));
    assert.equal(notice.paymentId, payment.id);
    assert.equal(notice.gatewayPaymentId, payment.gateway_payment_id);
    assert.equal(notice.invoiceId, payment.invoice_id);
    assert.equal(notice.amountMinor, 900);
    assert.equal(notice.currency, 'USD');
    assert.ok(Date.parse(notice.evidenceDueBy) > Date.now());
    // The event's outcome commits just after the signal went out.
    const event = await eventually(async () => (await stack.db('webhook_events').where({ event_id: notice.eventId }).whereNotNull('processed_at').first()) ?? false);
    assert.equal(event.outcome, 'chargeback_signalled');
    assert.equal(event.brand_id, brand.id);
    // The charge activity and the payment's own webhook both saw the payment: it is recorded once.
    await eventually(async () => (await stack.db('webhook_events').where({ type: 'payment.succeeded' }).whereRaw(`payload->>'paymentId' = ?`, [payment.gateway_payment_id]).first())?.processed_at);
    const payments = await stack.db('payments').where({ brand_id: brand.id, invoice_id: payment.invoice_id, status: 'succeeded' });
    assert.equal(payments.length, 1);
  });

  it('records late payments: a partial one leaves a balance, one beyond it becomes credit the next invoice uses', async () => {
    const id = uniqueId('cus');
    const signup = await stack.call('POST', '/v1/customers', {
      key: brand.key,
      body: { id, email: 'late@example.com', plan: 'starter', paymentMethod: 'tok_hard_decline' },
    });
    assert.equal(signup.status, 201, signup.text);
    const declined = await eventually(async () => stack.db('payments').where({ brand_id: brand.id, customer_id: id, status: 'declined' }).first());
    const invoiceId = declined.invoice_id as string;
    assert.equal(await invoiceBalanceMinor(stack.db, brand.id, invoiceId), 900);

    // The customer pays outside our charge activity (say, by bank transfer through the gateway).
    const pay = (amountMinor: number) =>
      gateway().charge({ amountMinor, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: uniqueId('late'), metadata: { brandId: brand.id, customerId: id, invoiceId } });
    const recorded = (gatewayPaymentId: string) => eventually(async () => stack.db('payments').where({ brand_id: brand.id, gateway_payment_id: gatewayPaymentId }).first());

    const partial = await pay(400);
    const first = await recorded(partial.paymentId!);
    assert.deepEqual([Number(first.amount_minor), Number(first.credited_minor)], [400, 0]);
    assert.equal(await invoiceBalanceMinor(stack.db, brand.id, invoiceId), 500);
    assert.equal((await stack.db('invoices').where({ id: invoiceId }).first()).status, 'finalized');

    const over = await pay(1500);
    const second = await recorded(over.paymentId!);
    assert.deepEqual([Number(second.amount_minor), Number(second.credited_minor)], [500, 1000]);
    assert.equal((await stack.db('invoices').where({ id: invoiceId }).first()).status, 'paid');
    assert.equal(await customerCreditMinor(stack.db, brand.id, id, 'USD'), 1000);

    // The gateway delivering the same event again changes nothing.
    const event = testSandboxGateway().events().find((e) => e.type === 'charge.succeeded' && e.data.object.id === over.paymentId)!;
    const body = JSON.stringify({ id: event.id, type: event.type, created: event.created, data: event.data });
    const replay = await deliver(body, signatureHeader(TEST_WEBHOOK_SECRET, body, now()));
    assert.deepEqual(replay.json, { received: true, duplicate: true, outcome: 'payment_recorded' });
    assert.equal((await stack.db('payments').where({ brand_id: brand.id, gateway_payment_id: over.paymentId }).select('id')).length, 1);

    const listed = await stack.call('GET', `/v1/customers/${id}/payments`, { key: brand.key });
    assert.equal(listed.status, 200, listed.text);
    const overView = listed.json.data.find((p: any) => p.gatewayPaymentId === over.paymentId);
    assert.deepEqual([overView.amount.amount, overView.applied.minor, overView.credited.minor], ['15.00', 500, 1000]);
    assert.ok(listed.json.data.some((p: any) => p.status === 'declined' && p.declineCode === 'hard_decline'));

    // The next invoice (9.00) is paid from the credit; 1.00 of it is left.
    const next = await finalizeInvoice(stack.db, {
      brandId: brand.id,
      customerId: id,
      billingKey: 'period:1',
      kind: 'period',
      subscription: {
        planCode: 'starter',
        planVersion: 1,
        planName: 'Starter',
        currency: 'USD',
        listPriceMinor: 900,
        discountPercent: 0,
        discountPeriods: null,
        billingPeriod: 'P1M',
        startedAt: new Date().toISOString(),
      },
      closingPeriod: null,
      advancePeriod: { number: 2, start: new Date().toISOString(), end: new Date(Date.now() + 30 * 86_400_000).toISOString() },
      issuedAt: new Date().toISOString(),
    });
    const invoice = await stack.db('invoices').where({ id: next.invoiceId }).first();
    assert.deepEqual([Number(invoice.total_minor), Number(invoice.credit_applied_minor), Number(invoice.amount_due_minor)], [900, 900, 0]);
    assert.equal(await customerCreditMinor(stack.db, brand.id, id, 'USD'), 100);

    // Refunding the overpayment gives back the unused credit first, then books contra revenue.
    const refund = await stack.call('POST', `/v1/payments/${second.id}/refunds`, {
      key: brand.key,
      body: { amount: '3.00', reason: 'overpaid' },
      headers: { 'Idempotency-Key': uniqueId('k') },
    });
    assert.equal(refund.status, 201, refund.text);
    assert.deepEqual([refund.json.amount.minor, refund.json.fromCredit.minor], [300, 100]);
    assert.ok((await customerCreditMinor(stack.db, brand.id, id, 'USD')) === 0);
  });
});
