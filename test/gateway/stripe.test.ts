/**
 * The Stripe adapter. Its requests are recorded through the official client's own HttpClient
 * hook (method, path, idempotency key, parameters) and Stripe's answers — approvals, declines,
 * outages, idempotency conflicts, balance transactions, webhooks — are mapped to Closeloop's
 * interface. When the stripe-mock binary is installed (`go install
 * github.com/stripe/stripe-mock@v0.203.0`, or STRIPE_MOCK_PATH), the same adapter also runs
 * against it, which checks every request against Stripe's OpenAPI schema.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Stripe from 'stripe';
import { GatewayRequestError, GatewayUnavailableError, type PaymentGateway, type WebhookRejection, WebhookVerificationError } from '../../gateway/adapter';
import { createStripeGateway, declineCodeFromStripe, type StripeGatewayOptions, stripeOptionsFromEnv } from '../../gateway/stripe';
import { ConfigError } from '../../infra/config';
import { stopChild } from '../../infra/processes';
import { unique } from './support';

interface RecordedRequest {
  host: string;
  port: string;
  protocol: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  params: URLSearchParams;
}

type Answer = { status: number; body: unknown } | Error;

class FakeResponse extends Stripe.HttpClientResponse {
  constructor(
    status: number,
    private readonly body: unknown,
  ) {
    super(status, { 'request-id': 'req_fake' });
  }
  override getRawResponse(): unknown {
    return this.body;
  }
  override toStream(): unknown {
    throw new Error('not streamed');
  }
  override toJSON(): Promise<unknown> {
    return Promise.resolve(this.body);
  }
}

/** Records every request the Stripe client makes, then answers from `answer` or passes it on to `inner`. */
class RecordingHttpClient extends Stripe.HttpClient {
  readonly requests: RecordedRequest[] = [];
  constructor(private readonly answer: ((req: RecordedRequest) => Answer) | Stripe.HttpClient) {
    super();
  }
  override getClientName(): string {
    return 'recording';
  }
  override makeRequest(...args: Parameters<Stripe.HttpClient['makeRequest']>): Promise<Stripe.HttpClientResponse> {
    const [host, port, fullPath, method, headers, requestData, protocol] = args;
    const [pathname = '', query = ''] = fullPath.split('?');
    const req: RecordedRequest = {
      host,
      port: String(port),
      protocol,
      method,
      path: pathname,
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)])),
      params: new URLSearchParams(method === 'GET' ? query : requestData),
    };
    this.requests.push(req);
    if (typeof this.answer !== 'function') return this.answer.makeRequest(...args);
    const answer = this.answer(req);
    if (answer instanceof Error) return Promise.reject(answer);
    return Promise.resolve(new FakeResponse(answer.status, answer.body));
  }
}

const WEBHOOK_SECRET = 'whsec_test_stripe';

function recordedGateway(answer: (req: RecordedRequest) => Answer, extra: Partial<StripeGatewayOptions> = {}) {
  const http = new RecordingHttpClient(answer);
  const gateway = createStripeGateway({ secretKey: 'sk_test_closeloop', webhookSecret: WEBHOOK_SECRET, httpClient: http, maxNetworkRetries: 0, ...extra });
  return { gateway, requests: http.requests };
}

const paymentIntent = (over: Record<string, unknown> = {}) => ({
  id: 'pi_1',
  object: 'payment_intent',
  amount: 1234,
  amount_received: 1234,
  currency: 'usd',
  status: 'succeeded',
  created: 1_773_482_400,
  metadata: { invoiceId: 'inv_1' },
  last_payment_error: null,
  latest_charge: { id: 'ch_1', object: 'charge', amount_refunded: 0, disputed: false, balance_transaction: { id: 'txn_1', object: 'balance_transaction', fee: 66 } },
  ...over,
});

const cardError = (declineCode: string | undefined, code = 'card_declined') => ({
  status: 402,
  body: {
    error: {
      type: 'card_error',
      code,
      ...(declineCode ? { decline_code: declineCode } : {}),
      message: 'Your card was declined.',
      payment_intent: paymentIntent({ id: 'pi_declined', status: 'requires_payment_method' }),
    },
  },
});

const apiError = (status: number, type: string, code?: string) => ({ status, body: { error: { type, ...(code ? { code } : {}), message: `${type} ${code ?? ''}` } } });

const chargeOf = (gateway: PaymentGateway, over: Partial<Parameters<PaymentGateway['charge']>[0]> = {}) =>
  gateway.charge({
    amountMinor: 1234,
    currency: 'USD',
    paymentMethod: 'pm_card_visa',
    customerRef: 'cus_123',
    idempotencyKey: 'inv_1-attempt_1',
    description: 'Invoice inv_1',
    metadata: { invoiceId: 'inv_1' },
    ...over,
  });

const isUnavailable = (code: string) => (e: unknown) => e instanceof GatewayUnavailableError && e.code === code && e.retryable;
const isRejected = (code: string) => (e: unknown) => e instanceof GatewayRequestError && e.code === code && !e.retryable;

describe('Stripe adapter', () => {
  describe('charges (recorded requests)', () => {
    it('creates and confirms one off-session PaymentIntent carrying our idempotency key', async () => {
      const { gateway, requests } = recordedGateway(() => ({ status: 200, body: paymentIntent() }));
      const result = await chargeOf(gateway);
      assert.deepEqual(result, { status: 'succeeded', paymentId: 'pi_1', feeMinor: 66 });
      assert.equal(requests.length, 1);
      const [req] = requests;
      assert.equal(req?.method, 'POST');
      assert.equal(req?.path, '/v1/payment_intents');
      assert.equal(req?.host, 'api.stripe.com');
      assert.equal(req?.headers['idempotency-key'], 'inv_1-attempt_1');
      assert.equal(req?.headers.authorization, 'Bearer sk_test_closeloop');
      assert.deepEqual(Object.fromEntries(req!.params), {
        amount: '1234',
        currency: 'usd',
        payment_method: 'pm_card_visa',
        customer: 'cus_123',
        confirm: 'true',
        off_session: 'true',
        'automatic_payment_methods[enabled]': 'true',
        'automatic_payment_methods[allow_redirects]': 'never',
        description: 'Invoice inv_1',
        'metadata[invoiceId]': 'inv_1',
        'expand[0]': 'latest_charge.balance_transaction',
      });
    });

    it('maps card declines to results with our decline codes', async () => {
      const cases: [ReturnType<typeof cardError>, string][] = [
        [cardError('insufficient_funds'), 'insufficient_funds'],
        [cardError('lost_card'), 'hard_decline'],
        [cardError('generic_decline'), 'soft_decline'],
        [cardError('try_again_later'), 'soft_decline'],
        [cardError(undefined, 'expired_card'), 'hard_decline'],
      ];
      for (const [answer, expected] of cases) {
        const { gateway } = recordedGateway(() => answer);
        const result = await chargeOf(gateway);
        assert.deepEqual(result, { status: 'declined', paymentId: 'pi_declined', declineCode: expected, declineMessage: 'Your card was declined.' });
      }
    });

    it('treats a PaymentIntent that needs the customer to authenticate as a hard decline', async () => {
      const { gateway } = recordedGateway(() => ({ status: 200, body: paymentIntent({ status: 'requires_action' }) }));
      const result = await chargeOf(gateway);
      assert.equal(result.status, 'declined');
      assert.equal(result.declineCode, 'hard_decline');
    });

    it('classifies decline codes: hard ones skip retries, unknown ones stay soft', () => {
      assert.equal(declineCodeFromStripe('insufficient_funds'), 'insufficient_funds');
      for (const code of ['stolen_card', 'fraudulent', 'do_not_try_again', 'authentication_required', 'incorrect_number']) assert.equal(declineCodeFromStripe(code), 'hard_decline', code);
      for (const code of ['do_not_honor', 'processing_error', 'issuer_not_available', 'a_code_stripe_adds_next_year', undefined]) assert.equal(declineCodeFromStripe(code), 'soft_decline', String(code));
    });

    it('maps 5xx, 429, a dropped connection and a request still in progress to GatewayUnavailableError', async () => {
      await assert.rejects(chargeOf(recordedGateway(() => apiError(500, 'api_error')).gateway), isUnavailable('server_error'));
      await assert.rejects(chargeOf(recordedGateway(() => apiError(429, 'rate_limit_error', 'rate_limit')).gateway), isUnavailable('rate_limited'));
      await assert.rejects(chargeOf(recordedGateway(() => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })).gateway), isUnavailable('network_error'));
      // 409 is Stripe's "a request with this key is still in progress": its result comes later.
      await assert.rejects(chargeOf(recordedGateway(() => apiError(409, 'idempotency_error')).gateway), isUnavailable('request_in_progress'));
    });

    it('maps an idempotency conflict, bad parameters and a bad key to GatewayRequestError', async () => {
      await assert.rejects(chargeOf(recordedGateway(() => apiError(400, 'idempotency_error')).gateway), isRejected('idempotency_key_reused'));
      await assert.rejects(chargeOf(recordedGateway(() => apiError(400, 'invalid_request_error', 'parameter_invalid_integer')).gateway), isRejected('parameter_invalid_integer'));
      await assert.rejects(chargeOf(recordedGateway(() => apiError(401, 'invalid_request_error', 'api_key_expired')).gateway), isRejected('api_key_expired'));
    });

    it('lets the client retry a 5xx itself with the same idempotency key', async function () {
      this.timeout(10_000);
      let calls = 0;
      const { gateway, requests } = recordedGateway(() => (++calls === 1 ? apiError(503, 'api_error') : { status: 200, body: paymentIntent() }), { maxNetworkRetries: 1 });
      assert.equal((await chargeOf(gateway)).status, 'succeeded');
      assert.deepEqual(requests.map((r) => r.headers['idempotency-key']), ['inv_1-attempt_1', 'inv_1-attempt_1']);
    });
  });

  describe('refunds and payments (recorded requests)', () => {
    it('refunds part of a PaymentIntent with our idempotency key', async () => {
      const { gateway, requests } = recordedGateway(() => ({
        status: 200,
        body: { id: 're_1', object: 'refund', amount: 300, currency: 'usd', status: 'pending', payment_intent: 'pi_1', charge: 'ch_1' },
      }));
      const result = await gateway.refund({ paymentId: 'pi_1', amountMinor: 300, idempotencyKey: 'refund-inv_1-1', reason: 'requested_by_customer' });
      assert.deepEqual(result, { refundId: 're_1', status: 'pending', paymentId: 'pi_1', amountMinor: 300, currency: 'USD' });
      assert.equal(requests[0]?.path, '/v1/refunds');
      assert.equal(requests[0]?.headers['idempotency-key'], 'refund-inv_1-1');
      assert.deepEqual(Object.fromEntries(requests[0]!.params), { payment_intent: 'pi_1', amount: '300', reason: 'requested_by_customer', 'metadata[reason]': 'requested_by_customer' });

      await gateway.refund({ paymentId: 'pi_1', amountMinor: 100, idempotencyKey: 'refund-2', reason: 'goodwill after an outage' });
      assert.deepEqual(Object.fromEntries(requests[1]!.params), { payment_intent: 'pi_1', amount: '100', 'metadata[reason]': 'goodwill after an outage' });
    });

    it('refuses an over-refund as a request error', async () => {
      const { gateway } = recordedGateway(() => apiError(400, 'invalid_request_error', 'amount_too_large'));
      await assert.rejects(gateway.refund({ paymentId: 'pi_1', amountMinor: 99_999, idempotencyKey: unique('re') }), isRejected('amount_too_large'));
    });

    it('reads a payment, and returns null for one Stripe does not have', async () => {
      const { gateway, requests } = recordedGateway((req) =>
        req.path.endsWith('/pi_missing') ? apiError(404, 'invalid_request_error', 'resource_missing') : { status: 200, body: paymentIntent({ latest_charge: { ...paymentIntent().latest_charge, amount_refunded: 200, disputed: true } }) },
      );
      const payment = await gateway.getPayment('pi_1');
      assert.deepEqual(payment, {
        paymentId: 'pi_1',
        status: 'succeeded',
        amountMinor: 1234,
        currency: 'USD',
        amountRefundedMinor: 200,
        feeMinor: 66,
        disputed: true,
        createdAt: new Date(1_773_482_400_000).toISOString(),
        metadata: { invoiceId: 'inv_1' },
      });
      assert.equal(requests[0]?.method, 'GET');
      assert.equal(requests[0]?.path, '/v1/payment_intents/pi_1');
      assert.equal(requests[0]?.params.get('expand[0]'), 'latest_charge.balance_transaction');
      assert.equal(await gateway.getPayment('pi_missing'), null);
    });
  });

  describe('settlement report (recorded requests)', () => {
    const at = (hour: number) => Date.UTC(2026, 2, 14, hour) / 1000;
    const bt = (id: string, reporting_category: string, amount: number, fee: number, source: unknown) => ({
      id,
      object: 'balance_transaction',
      amount,
      fee,
      net: amount - fee,
      currency: 'usd',
      created: at(10),
      reporting_category,
      type: reporting_category,
      source,
    });

    it('lists the day’s balance transactions, page by page, as settlement lines with totals', async () => {
      const page1 = [
        bt('txn_charge', 'charge', 10_000, 320, { id: 'ch_1', object: 'charge', payment_intent: 'pi_1' }),
        bt('txn_refund', 'refund', -500, 0, { id: 're_1', object: 'refund', payment_intent: 'pi_1', charge: 'ch_1' }),
        bt('txn_dispute', 'dispute', -3000, 1500, { id: 'dp_1', object: 'dispute', payment_intent: 'pi_2', charge: 'ch_2' }),
      ];
      const page2 = [
        bt('txn_fee', 'fee', -200, 0, null),
        bt('txn_payout', 'payout', -5000, 0, { id: 'po_1', object: 'payout' }),
        bt('txn_adj', 'other_adjustment', 50, 0, null),
      ];
      const { gateway, requests } = recordedGateway((req) => ({
        status: 200,
        body: req.params.get('starting_after')
          ? { object: 'list', url: '/v1/balance_transactions', has_more: false, data: page2 }
          : { object: 'list', url: '/v1/balance_transactions', has_more: true, data: page1 },
      }));
      const report = await gateway.settlementReport({ date: '2026-03-14' });

      assert.equal(requests.length, 2);
      assert.equal(requests[0]?.path, '/v1/balance_transactions');
      assert.equal(requests[0]?.params.get('created[gte]'), String(Date.UTC(2026, 2, 14) / 1000));
      assert.equal(requests[0]?.params.get('created[lt]'), String(Date.UTC(2026, 2, 15) / 1000));
      assert.equal(requests[0]?.params.get('expand[0]'), 'data.source');
      assert.equal(requests[1]?.params.get('starting_after'), 'txn_dispute');

      assert.deepEqual(
        report.lines.map((l) => [l.type, l.id, l.paymentId, l.amountMinor, l.feeMinor, l.currency]),
        [
          ['payment', 'txn_charge', 'pi_1', 10_000, 320, 'USD'],
          ['refund', 'txn_refund', 'pi_1', -500, 0, 'USD'],
          ['chargeback', 'txn_dispute', 'pi_2', -3000, 0, 'USD'],
          ['fee', 'fee_txn_dispute', 'pi_2', 0, 1500, 'USD'],
          ['fee', 'txn_fee', undefined, 0, 200, 'USD'],
          ['adjustment', 'txn_adj', undefined, 50, 0, 'USD'],
        ],
      );
      // The payout is what the other lines add up to, so it is not a line itself.
      const net = [...page1, ...page2].filter((t) => t.reporting_category !== 'payout').reduce((sum, t) => sum + t.net, 0);
      assert.deepEqual(report.totals, { USD: { gross: 6550, fees: 2020, net } });
      assert.equal(net, 4530);
    });

    it('refuses a date that is not a real day without calling Stripe', async () => {
      const { gateway, requests } = recordedGateway(() => ({ status: 500, body: {} }));
      await assert.rejects(gateway.settlementReport({ date: '2026-02-29' }), isRejected('parameter_invalid'));
      assert.equal(requests.length, 0);
    });
  });

  describe('webhooks', () => {
    const { gateway } = recordedGateway(() => ({ status: 500, body: {} }));
    const event = (type: string, object: Record<string, unknown>) =>
      JSON.stringify({ id: unique('evt'), object: 'event', type, created: 1_773_482_400, api_version: '2026-10-28.endive', livemode: false, pending_webhooks: 1, request: null, data: { object } });
    const dispute = event('charge.dispute.created', { id: 'dp_1', object: 'dispute', amount: 6000, currency: 'usd', payment_intent: 'pi_9', charge: 'ch_9', reason: 'fraudulent', metadata: {} });
    const signed = (payload: string, opts: { secret?: string; timestamp?: number } = {}) => ({
      'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: opts.secret ?? WEBHOOK_SECRET, timestamp: opts.timestamp }),
    });
    const refusedFor = (reason: WebhookRejection) => (e: unknown) => e instanceof WebhookVerificationError && e.reason === reason;

    it('verifies a dispute webhook with stripe.webhooks.constructEvent and normalises it', () => {
      const verified = gateway.verifyWebhook(Buffer.from(dispute), signed(dispute));
      assert.deepEqual(
        { ...verified, id: undefined },
        { id: undefined, type: 'chargeback.created', occurredAt: new Date(1_773_482_400_000).toISOString(), gatewayType: 'charge.dispute.created', chargebackId: 'dp_1', paymentId: 'pi_9', amountMinor: 6000, currency: 'USD', reason: 'fraudulent', metadata: {} },
      );
    });

    it('normalises payment and refund events', () => {
      const succeeded = event('payment_intent.succeeded', paymentIntent());
      assert.equal(gateway.verifyWebhook(Buffer.from(succeeded), signed(succeeded)).type, 'payment.succeeded');
      const failed = event('payment_intent.payment_failed', paymentIntent({ status: 'requires_payment_method', last_payment_error: { decline_code: 'stolen_card' } }));
      const declined = gateway.verifyWebhook(Buffer.from(failed), signed(failed));
      assert.equal(declined.type === 'payment.declined' && declined.declineCode, 'hard_decline');
      const refunded = event('refund.created', { id: 're_1', object: 'refund', amount: 300, currency: 'usd', status: 'succeeded', payment_intent: 'pi_1' });
      assert.equal(gateway.verifyWebhook(Buffer.from(refunded), signed(refunded)).type, 'refund.succeeded');
      const other = event('customer.created', { id: 'cus_1', object: 'customer' });
      assert.equal(gateway.verifyWebhook(Buffer.from(other), signed(other)).type, 'other');
    });

    it('refuses a tampered body, a wrong secret, a 10-minute-old timestamp and a missing header', () => {
      assert.throws(() => gateway.verifyWebhook(Buffer.from(dispute.replace('6000', '1')), signed(dispute)), refusedFor('bad_signature'));
      assert.throws(() => gateway.verifyWebhook(Buffer.from(dispute), signed(dispute, { secret: 'whsec_other' })), refusedFor('bad_signature'));
      assert.throws(() => gateway.verifyWebhook(Buffer.from(dispute), signed(dispute, { timestamp: Math.floor(Date.now() / 1000) - 600 })), refusedFor('timestamp_outside_tolerance'));
      assert.throws(() => gateway.verifyWebhook(Buffer.from(dispute), {}), refusedFor('missing_signature'));
      assert.throws(() => gateway.verifyWebhook(Buffer.from(dispute), { 'stripe-signature': 'garbage' }), refusedFor('malformed_signature'));
    });
  });

  describe('configuration from the environment', () => {
    it('needs STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET, naming the missing one', () => {
      const named = (name: string) => (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${name} `);
      assert.throws(() => stripeOptionsFromEnv({}), named('STRIPE_SECRET_KEY'));
      assert.throws(() => stripeOptionsFromEnv({ STRIPE_SECRET_KEY: 'pk_test_public' }), named('STRIPE_SECRET_KEY'));
      assert.throws(() => stripeOptionsFromEnv({ STRIPE_SECRET_KEY: 'sk_test_1' }), named('STRIPE_WEBHOOK_SECRET'));
      assert.throws(() => stripeOptionsFromEnv({ STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_WEBHOOK_SECRET: 'whsec_1', STRIPE_API_BASE: 'localhost' }), named('STRIPE_API_BASE'));
      assert.deepEqual(stripeOptionsFromEnv({ STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_WEBHOOK_SECRET: 'whsec_1' }), { secretKey: 'sk_test_1', webhookSecret: 'whsec_1', apiBase: undefined, timeoutMs: undefined });
    });

    it('sends requests to STRIPE_API_BASE when set', async () => {
      const options = stripeOptionsFromEnv({ STRIPE_SECRET_KEY: 'sk_test_1', STRIPE_WEBHOOK_SECRET: 'whsec_1', STRIPE_API_BASE: 'http://127.0.0.1:12111', STRIPE_TIMEOUT_MS: '5000' });
      const { gateway, requests } = recordedGateway(() => ({ status: 200, body: paymentIntent() }), options);
      await chargeOf(gateway);
      assert.deepEqual([requests[0]?.protocol, requests[0]?.host, requests[0]?.port], ['http', '127.0.0.1', '12111']);
    });
  });

  describe('against stripe-mock', function () {
    let mock: ChildProcess | undefined;
    let gateway: PaymentGateway;
    let recorder: RecordingHttpClient;

    before(async function () {
      const binary = stripeMockBinary();
      if (!binary) {
        console.log('      (stripe-mock not installed: go install github.com/stripe/stripe-mock@v0.203.0, or set STRIPE_MOCK_PATH)');
        this.skip();
      }
      const started = await startStripeMock(binary);
      mock = started.child;
      recorder = new RecordingHttpClient(Stripe.createNodeHttpClient());
      gateway = createStripeGateway({ secretKey: 'sk_test_123', webhookSecret: WEBHOOK_SECRET, apiBase: `http://127.0.0.1:${started.port}`, httpClient: recorder, maxNetworkRetries: 0 });
    });
    after(async () => {
      if (mock) await stopChild(mock, 5_000);
    });

    it('creates and confirms a PaymentIntent that Stripe’s schema accepts', async () => {
      const key = unique('inv-attempt');
      const result = await chargeOf(gateway, { idempotencyKey: key });
      assert.match(result.paymentId ?? '', /^pi_/);
      // stripe-mock answers from fixed fixtures, so only the shape of the outcome is checked.
      assert.ok(['succeeded', 'declined'].includes(result.status));
      assert.equal(recorder.requests.at(-1)?.headers['idempotency-key'], key);
    });

    it('refunds, reads a payment and lists balance transactions', async () => {
      const refund = await gateway.refund({ paymentId: 'pi_123', amountMinor: 100, idempotencyKey: unique('re'), reason: 'requested_by_customer' });
      assert.match(refund.refundId, /^re_/);
      assert.equal((await gateway.getPayment('pi_123'))?.paymentId, 'pi_123');
      const report = await gateway.settlementReport({ date: '2026-03-14' });
      for (const totals of Object.values(report.totals)) assert.equal(totals.gross - totals.fees, totals.net);
    });

    it('gets a request error for parameters Stripe’s schema refuses', async () => {
      await assert.rejects(chargeOf(gateway, { amountMinor: 10.5 }), (e: unknown) => e instanceof GatewayRequestError && e.httpStatus === 400);
    });
  });
});

function stripeMockBinary(): string | undefined {
  const goPath = process.env.GOPATH?.split(path.delimiter)[0] ?? path.join(os.homedir(), 'go');
  const candidates = [
    process.env.STRIPE_MOCK_PATH,
    ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, 'stripe-mock')),
    path.join(goPath, 'bin', 'stripe-mock'),
  ];
  return candidates.find((file): file is string => {
    if (!file) return false;
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Starts stripe-mock on free loopback ports and reads the HTTP port it chose from its output. */
function startStripeMock(binary: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(binary, ['-http-addr', '127.0.0.1:', '-https-addr', '127.0.0.1:'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stripe-mock did not start within 15 s:\n${output}`));
    }, 15_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const m = /Listening for HTTP at address: 127\.0\.0\.1:(\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stripe-mock exited with ${code}:\n${output}`));
    });
  });
}
