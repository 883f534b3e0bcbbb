/**
 * The sandbox gateway's outgoing webhooks, received by a real HTTP server and checked by the
 * sandbox adapter's verifyWebhook: signed deliveries pass; a tampered body, a wrong secret and a
 * replayed old delivery are refused; failed deliveries are retried with the same event id, and
 * undelivered events survive a restart.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort } from '../../infra/postgres';
import { type GatewayEvent, GatewayErrorTypes, type PaymentGateway, type WebhookRejection, WebhookVerificationError } from '../../gateway/adapter';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { type SandboxGateway, startSandboxGateway } from '../../gateway/sandbox-server';
import { signatureHeader } from '../../gateway/webhook-signature';
import { SECRET, startWebhookReceiver, tempDir, unique, waitUntil, type Delivery, type WebhookReceiver } from './support';

const refusedFor = (reason: WebhookRejection) => (err: unknown) => {
  assert.ok(err instanceof WebhookVerificationError, `expected WebhookVerificationError, got ${String(err)}`);
  assert.equal(err.type, GatewayErrorTypes.WEBHOOK_VERIFICATION_FAILED);
  assert.equal(err.reason, reason);
  return true;
};

describe('sandbox gateway webhooks', () => {
  let receiver: WebhookReceiver;
  let sandbox: SandboxGateway;
  let gateway: PaymentGateway;

  before(async () => {
    receiver = await startWebhookReceiver();
    sandbox = await startSandboxGateway({
      webhookSecret: SECRET,
      webhookUrl: receiver.url,
      chargebackAfterMs: 100,
      webhookRetry: { baseDelayMs: 50, maxAttempts: 4 },
    });
    gateway = createSandboxGateway({ baseUrl: sandbox.url, webhookSecret: SECRET });
  });
  after(async () => {
    await sandbox.stop();
    await receiver.stop();
  });

  const charge = (paymentMethod: string, amountMinor = 1000) =>
    gateway.charge({ amountMinor, currency: 'USD', paymentMethod, idempotencyKey: unique('key'), metadata: { invoiceId: unique('inv'), customerId: 'cus_1' } });

  /** The delivery of `type` about a payment (charge events carry it as id, refunds and disputes as payment). */
  const deliveryFor = (type: string, paymentId: string) =>
    receiver.waitFor(`${type} for ${paymentId}`, (d) => {
      if (d.type !== type) return false;
      const object = (JSON.parse(d.rawBody.toString('utf8')) as { data: { object: { id: string; payment?: string } } }).data.object;
      return (object.payment ?? object.id) === paymentId;
    });

  it('delivers a signed charge.succeeded that verifyWebhook accepts', async () => {
    const paid = await charge('tok_visa', 4321);
    const delivery = await deliveryFor('charge.succeeded', paid.paymentId!);
    assert.match(String(delivery.headers['sandbox-signature']), /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.equal(delivery.headers['sandbox-event-id'], delivery.eventId);
    const event = gateway.verifyWebhook(delivery.rawBody, delivery.headers);
    assert.equal(event.type, 'payment.succeeded');
    assert.equal(event.id, delivery.eventId);
    assert.equal(event.gatewayType, 'charge.succeeded');
    if (event.type !== 'payment.succeeded') return;
    assert.equal(event.paymentId, paid.paymentId);
    assert.equal(event.amountMinor, 4321);
    assert.equal(event.currency, 'USD');
    assert.equal(event.metadata.customerId, 'cus_1');
  });

  describe('verifyWebhook refuses', () => {
    let delivery: Delivery;
    before(async () => {
      const paid = await charge('tok_visa');
      delivery = await deliveryFor('charge.succeeded', paid.paymentId!);
    });

    it('a tampered body', () => {
      const tampered = Buffer.from(delivery.rawBody.toString().replace('"amount":1000', '"amount":1'));
      assert.notDeepEqual(tampered, delivery.rawBody);
      assert.throws(() => gateway.verifyWebhook(tampered, delivery.headers), refusedFor('bad_signature'));
    });

    it('a delivery checked with the wrong secret', () => {
      const other = createSandboxGateway({ baseUrl: sandbox.url, webhookSecret: 'whsec_someone_else' });
      assert.throws(() => other.verifyWebhook(delivery.rawBody, delivery.headers), refusedFor('bad_signature'));
    });

    it('a validly signed delivery whose timestamp is 10 minutes old (a replay)', () => {
      const tenMinutesAgo = Math.floor(Date.now() / 1000) - 600;
      const headers = { 'sandbox-signature': signatureHeader(SECRET, delivery.rawBody, tenMinutesAgo) };
      assert.throws(() => gateway.verifyWebhook(delivery.rawBody, headers), refusedFor('timestamp_outside_tolerance'));
      // The same delivery, received ten minutes late.
      const late = createSandboxGateway({ baseUrl: sandbox.url, webhookSecret: SECRET, now: () => new Date(Date.now() + 600_000) });
      assert.throws(() => late.verifyWebhook(delivery.rawBody, delivery.headers), refusedFor('timestamp_outside_tolerance'));
    });

    it('a delivery without a signature, or with a malformed one', () => {
      assert.throws(() => gateway.verifyWebhook(delivery.rawBody, {}), refusedFor('missing_signature'));
      assert.throws(() => gateway.verifyWebhook(delivery.rawBody, { 'Sandbox-Signature': 'v1=abc' }), refusedFor('malformed_signature'));
    });

    it('accepts a 4-minute-old delivery, inside the 5-minute window', () => {
      const fourMinutesAgo = Math.floor(Date.now() / 1000) - 240;
      const event = gateway.verifyWebhook(delivery.rawBody, { 'Sandbox-Signature': signatureHeader(SECRET, delivery.rawBody, fourMinutesAgo) });
      assert.equal(event.id, delivery.eventId);
    });
  });

  it('sends charge.failed with the decline code', async () => {
    const declined = await charge('tok_insufficient_funds');
    const event = gateway.verifyWebhook(...deliveryArgs(await deliveryFor('charge.failed', declined.paymentId!)));
    assert.equal(event.type, 'payment.declined');
    assert.equal(event.type === 'payment.declined' && event.declineCode, 'insufficient_funds');
  });

  it('sends refund.succeeded', async () => {
    const paid = await charge('tok_visa', 2000);
    const refund = await gateway.refund({ paymentId: paid.paymentId!, amountMinor: 800, idempotencyKey: unique('re') });
    const event = gateway.verifyWebhook(...deliveryArgs(await deliveryFor('refund.succeeded', paid.paymentId!)));
    assert.deepEqual(pick(event, ['type', 'refundId', 'paymentId', 'amountMinor', 'currency']), {
      type: 'refund.succeeded',
      refundId: refund.refundId,
      paymentId: paid.paymentId,
      amountMinor: 800,
      currency: 'USD',
    });
  });

  it('disputes a tok_chargeback payment later with a charge.dispute.created webhook', async () => {
    const paid = await charge('tok_chargeback', 6000);
    assert.equal(paid.status, 'succeeded');
    const event = gateway.verifyWebhook(...deliveryArgs(await deliveryFor('charge.dispute.created', paid.paymentId!)));
    assert.equal(event.type, 'chargeback.created');
    if (event.type !== 'chargeback.created') return;
    assert.equal(event.paymentId, paid.paymentId);
    assert.equal(event.amountMinor, 6000);
    assert.equal(event.currency, 'USD');
    assert.match(event.chargebackId, /^dp_/);
    assert.equal(event.metadata.customerId, 'cus_1', 'the payment’s metadata routes the chargeback to its customer');
    assert.equal((await gateway.getPayment(paid.paymentId!))?.disputed, true);
    // The chargeback already took the money back.
    await assert.rejects(gateway.refund({ paymentId: paid.paymentId!, amountMinor: 100, idempotencyKey: unique('re') }), (e: Error & { code?: string }) => e.code === 'charge_disputed');
  });

  it('retries a failed delivery with backoff, with the same event id and a valid signature each time', async () => {
    receiver.failNext(500, 503);
    const paid = await charge('tok_visa', 1111);
    const id = (await deliveryFor('charge.succeeded', paid.paymentId!)).eventId;
    await waitUntil('the third delivery', () => receiver.deliveries.filter((d) => d.eventId === id).length >= 3);
    const attempts = receiver.deliveries.filter((d) => d.eventId === id);
    for (const d of attempts) assert.equal(gateway.verifyWebhook(d.rawBody, d.headers).id, id);
    const stored = await waitUntil('delivered status', () => sandbox.events().find((e) => e.id === id && e.delivery.status === 'delivered'));
    assert.equal(stored.delivery.attempts, 3);
  });

  it('announces a settlement report when asked through the control endpoint', async () => {
    const res = await fetch(`${sandbox.url}/v1/_sandbox/settlements/2026-03-14/ready`, { method: 'POST' });
    assert.equal(res.status, 200);
    const delivery = await receiver.waitFor('settlement.report_ready', (d) => d.type === 'settlement.report_ready');
    const event = gateway.verifyWebhook(delivery.rawBody, delivery.headers);
    assert.deepEqual(pick(event, ['type', 'date']), { type: 'settlement.ready', date: '2026-03-14' });
  });

  it('keeps undelivered webhooks across a restart and delivers them once the receiver is there', async function () {
    this.timeout(20_000);
    const tmp = tempDir();
    const stateFile = path.join(tmp.dir, 'sandbox.json');
    const nobody = `http://127.0.0.1:${await freePort()}/webhooks`;
    let running = await startSandboxGateway({ webhookSecret: SECRET, webhookUrl: nobody, stateFile, webhookRetry: { baseDelayMs: 50 } });
    try {
      const client = createSandboxGateway({ baseUrl: running.url, webhookSecret: SECRET });
      const paid = await client.charge({ amountMinor: 999, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: unique('key') });
      await waitUntil('a failed delivery attempt', () => running.events().some((e) => e.delivery.attempts > 0 && e.delivery.lastError));
      await running.stop();

      running = await startSandboxGateway({ webhookSecret: SECRET, webhookUrl: receiver.url, stateFile, webhookRetry: { baseDelayMs: 50 } });
      await deliveryFor('charge.succeeded', paid.paymentId!);
      await waitUntil('delivered status', () => running.events().every((e) => e.delivery.status === 'delivered'));
    } finally {
      await running.stop();
      tmp.remove();
    }
  });

  it('holds events while no webhook URL is set and delivers them when one is', async () => {
    const quiet = await startSandboxGateway({ webhookSecret: SECRET });
    try {
      const client = createSandboxGateway({ baseUrl: quiet.url, webhookSecret: SECRET });
      const paid = await client.charge({ amountMinor: 321, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: unique('key') });
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(quiet.events().map((e) => [e.type, e.delivery.status, e.delivery.attempts]), [['charge.succeeded', 'pending', 0]]);
      const res = await fetch(`${quiet.url}/v1/_sandbox/webhook`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: receiver.url }) });
      assert.equal(res.status, 200);
      await deliveryFor('charge.succeeded', paid.paymentId!);
    } finally {
      await quiet.stop();
    }
  });
});

function deliveryArgs(d: Delivery): [Buffer, Delivery['headers']] {
  return [d.rawBody, d.headers];
}

function pick(event: GatewayEvent, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, (event as unknown as Record<string, unknown>)[k]]));
}
