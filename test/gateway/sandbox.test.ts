/**
 * The sandbox gateway as a real HTTP service, driven through the sandbox adapter the way
 * collections will drive it: declines are results, lost answers are retried with the same
 * idempotency key and never charge twice, refunds never exceed what was captured, and the
 * settlement report adds up.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { GatewayErrorTypes, GatewayRequestError, GatewayUnavailableError, type PaymentGateway } from '../../gateway/adapter';
import { loadSandboxGatewayConfig, DEV_SANDBOX_WEBHOOK_SECRET } from '../../gateway/main';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { type SandboxGateway, sandboxFeeMinor, startSandboxGateway, tokenBehaviour } from '../../gateway/sandbox-server';
import { ConfigError } from '../../infra/config';
import { chargesWithKey, sandboxCharges, SECRET, tempDir, unique } from './support';

const unavailable = (code: string) => (err: unknown) => {
  assert.ok(err instanceof GatewayUnavailableError, `expected GatewayUnavailableError, got ${String(err)}`);
  assert.equal(err.type, GatewayErrorTypes.GATEWAY_UNAVAILABLE);
  assert.equal(err.retryable, true);
  assert.equal(err.code, code);
  return true;
};

const rejected = (code: string, httpStatus?: number) => (err: unknown) => {
  assert.ok(err instanceof GatewayRequestError, `expected GatewayRequestError, got ${String(err)}`);
  assert.equal(err.type, GatewayErrorTypes.GATEWAY_REQUEST_REJECTED);
  assert.equal(err.retryable, false);
  assert.equal(err.code, code);
  if (httpStatus !== undefined) assert.equal(err.httpStatus, httpStatus);
  return true;
};

describe('sandbox gateway', () => {
  let sandbox: SandboxGateway;
  let gateway: PaymentGateway;
  /** Gives up long before tok_timeout answers. */
  let impatient: PaymentGateway;

  before(async () => {
    sandbox = await startSandboxGateway({ port: 0, webhookSecret: SECRET, timeoutDelayMs: 300 });
    gateway = createSandboxGateway({ baseUrl: sandbox.url, webhookSecret: SECRET, timeoutMs: 5_000 });
    impatient = createSandboxGateway({ baseUrl: sandbox.url, webhookSecret: SECRET, timeoutMs: 100 });
  });
  after(() => sandbox.stop());

  const charge = (paymentMethod: string, amountMinor = 1000, idempotencyKey = unique('key'), client = gateway) =>
    client.charge({ amountMinor, currency: 'usd', paymentMethod, idempotencyKey, description: 'Invoice inv_1', metadata: { invoiceId: 'inv_1' } });

  describe('charges', () => {
    it('approves tok_visa and reports the fee', async () => {
      const result = await charge('tok_visa', 1000);
      assert.equal(result.status, 'succeeded');
      assert.match(result.paymentId ?? '', /^ch_/);
      assert.equal(result.feeMinor, 59);
      const payment = await gateway.getPayment(result.paymentId!);
      assert.deepEqual(
        { ...payment, createdAt: undefined },
        { paymentId: result.paymentId, status: 'succeeded', amountMinor: 1000, currency: 'USD', amountRefundedMinor: 0, feeMinor: 59, disputed: false, createdAt: undefined, metadata: { invoiceId: 'inv_1' } },
      );
    });

    it('returns a hard decline as a result, not an exception', async () => {
      const result = await charge('tok_hard_decline');
      assert.equal(result.status, 'declined');
      assert.equal(result.declineCode, 'hard_decline');
      assert.match(result.declineMessage ?? '', /new|another payment method/);
      assert.equal(result.feeMinor, undefined);
      const payment = await gateway.getPayment(result.paymentId!);
      assert.equal(payment?.status, 'declined');
      assert.equal(payment?.declineCode, 'hard_decline');
    });

    it('keeps declining a hard-declined card on every retry', async () => {
      for (let attempt = 0; attempt < 4; attempt += 1) {
        assert.equal((await charge('tok_hard_decline', 777)).declineCode, 'hard_decline');
      }
    });

    it('declines tok_insufficient_funds with insufficient_funds', async () => {
      const result = await charge('tok_insufficient_funds');
      assert.deepEqual([result.status, result.declineCode], ['declined', 'insufficient_funds']);
    });

    it('soft-declines the first two attempts for the same card and amount, then approves', async () => {
      const token = unique('tok_soft_decline');
      const outcomes = [];
      for (let attempt = 0; attempt < 4; attempt += 1) outcomes.push(await charge(token, 2500));
      assert.deepEqual(
        outcomes.map((o) => o.status === 'succeeded' ? 'succeeded' : o.declineCode),
        ['soft_decline', 'soft_decline', 'succeeded', 'succeeded'],
      );
      // Another amount on the same card is another counter.
      assert.equal((await charge(token, 2600)).declineCode, 'soft_decline');
    });

    it('charges once for the same idempotency key, and replays the same result', async () => {
      const key = unique('inv_1-attempt_1');
      const first = await charge('tok_visa', 4200, key);
      const second = await charge('tok_visa', 4200, key);
      assert.deepEqual(second, first);
      assert.equal((await chargesWithKey(sandbox.url, key)).length, 1);
    });

    it('replays a decline for the same key without counting another attempt', async () => {
      const token = unique('tok_soft_decline');
      const key = unique('key');
      assert.equal((await charge(token, 900, key)).declineCode, 'soft_decline');
      assert.equal((await charge(token, 900, key)).declineCode, 'soft_decline');
      // Replays did not count: the next real attempt is only the second.
      assert.equal((await charge(token, 900)).declineCode, 'soft_decline');
      assert.equal((await charge(token, 900)).status, 'succeeded');
    });

    it('refuses the same key with a different amount (409) and charges nothing more', async () => {
      const key = unique('key');
      await charge('tok_visa', 1000, key);
      await assert.rejects(charge('tok_visa', 1001, key), rejected('idempotency_key_reused', 409));
      const charges = await chargesWithKey(sandbox.url, key);
      assert.deepEqual(charges.map((c) => c.amount), [1000]);
    });

    it('times out on tok_timeout, yet the retry with the same key returns the original success: one charge', async function () {
      this.timeout(10_000);
      const key = unique('inv_timeout-attempt_1');
      await assert.rejects(charge('tok_timeout', 3000, key, impatient), unavailable('timeout'));
      // The gateway charged although the client never heard back: the double-charge trap.
      const [charged] = await chargesWithKey(sandbox.url, key);
      assert.equal(charged?.status, 'succeeded');
      const retried = await charge('tok_timeout', 3000, key, impatient);
      assert.equal(retried.status, 'succeeded');
      assert.equal(retried.paymentId, charged?.id);
      assert.equal((await chargesWithKey(sandbox.url, key)).length, 1);
    });

    it('answers tok_timeout after the configured delay to a patient client', async () => {
      const started = Date.now();
      const result = await charge('tok_timeout', 3100);
      assert.equal(result.status, 'succeeded');
      assert.ok(Date.now() - started >= 290, `answered after ${Date.now() - started} ms`);
    });

    it('drops the connection on tok_network_failure, and the retry with the same key succeeds once', async () => {
      const key = unique('key');
      await assert.rejects(charge('tok_network_failure', 1500, key), unavailable('network_error'));
      const retried = await charge('tok_network_failure', 1500, key);
      assert.equal(retried.status, 'succeeded');
      const charges = await chargesWithKey(sandbox.url, key);
      assert.equal(charges.length, 1);
      assert.equal(charges[0]?.id, retried.paymentId);
    });

    it('maps an outage (503) to GatewayUnavailableError, charging nothing', async () => {
      const key = unique('key');
      const res = await fetch(`${sandbox.url}/v1/_sandbox/outage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ requests: 1 }) });
      assert.equal(res.status, 200);
      await assert.rejects(charge('tok_visa', 1000, key), (err: unknown) => unavailable('server_error')(err) && (err as GatewayUnavailableError).httpStatus === 503);
      assert.equal((await chargesWithKey(sandbox.url, key)).length, 0);
      assert.equal((await charge('tok_visa', 1000, key)).status, 'succeeded');
    });

    it('maps an unreachable gateway to GatewayUnavailableError', async () => {
      const stopped = await startSandboxGateway({ webhookSecret: SECRET });
      await stopped.stop();
      const client = createSandboxGateway({ baseUrl: stopped.url, webhookSecret: SECRET, timeoutMs: 1000 });
      await assert.rejects(charge('tok_visa', 1000, unique('key'), client), unavailable('network_error'));
    });

    it('refuses an unknown payment method and bad amounts as request errors', async () => {
      await assert.rejects(charge('tok_no_such_card'), rejected('invalid_payment_method', 400));
      await assert.rejects(charge('tok_visa', 0), rejected('parameter_invalid', 400));
      await assert.rejects(charge('tok_visa', 10.5), rejected('parameter_invalid', 400));
    });

    it('requires an idempotency key', async () => {
      const res = await fetch(`${sandbox.url}/v1/charges`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount: 100, currency: 'USD', payment_method: 'tok_visa' }),
      });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'idempotency_key_required');
    });

    it('returns null for a payment it does not have', async () => {
      assert.equal(await gateway.getPayment('ch_does_not_exist'), null);
    });

    it('matches token behaviours by base name or base name with a suffix', () => {
      assert.equal(tokenBehaviour('tok_visa'), 'approve');
      assert.equal(tokenBehaviour('tok_soft_decline_cus42'), 'softDecline');
      assert.equal(tokenBehaviour('tok_visas'), undefined);
    });
  });

  describe('fees', () => {
    it('charges 2.9 % + 30 minor units, rounded half away from zero', () => {
      const table: [number, number][] = [
        [1000, 59], // 29.0
        [1234, 66], // 35.786
        [500, 45], // 14.5 → 15
        [1500, 74], // 43.5 → 44
        [50, 31], // 1.45 → 1
        [1, 30], // 0.029 → 0
        [99_999_999, 2_900_030], // 2 899 999.971 → 2 900 000
      ];
      for (const [amount, fee] of table) assert.equal(sandboxFeeMinor(amount), fee, `fee on ${amount}`);
    });

    it('reports the same fee on the charge', async () => {
      assert.equal((await charge('tok_visa', 500)).feeMinor, 45);
      assert.equal((await charge('tok_visa', 1234)).feeMinor, 66);
    });
  });

  describe('refunds', () => {
    it('refunds in parts up to what was captured, and refuses more', async () => {
      const paid = await charge('tok_visa', 1000);
      const paymentId = paid.paymentId!;
      await assert.rejects(gateway.refund({ paymentId, amountMinor: 1001, idempotencyKey: unique('re'), reason: 'too much' }), rejected('amount_too_large', 400));
      const first = await gateway.refund({ paymentId, amountMinor: 300, idempotencyKey: unique('re'), reason: 'partial credit' });
      assert.deepEqual({ ...first, refundId: undefined }, { refundId: undefined, status: 'succeeded', paymentId, amountMinor: 300, currency: 'USD' });
      assert.match(first.refundId, /^re_/);
      await assert.rejects(gateway.refund({ paymentId, amountMinor: 701, idempotencyKey: unique('re') }), rejected('amount_too_large'));
      await gateway.refund({ paymentId, amountMinor: 700, idempotencyKey: unique('re') });
      await assert.rejects(gateway.refund({ paymentId, amountMinor: 1, idempotencyKey: unique('re') }), rejected('charge_already_refunded'));
      assert.equal((await gateway.getPayment(paymentId))?.amountRefundedMinor, 1000);
    });

    it('refunds once for the same idempotency key, and refuses the key with another amount', async () => {
      const { paymentId } = await charge('tok_visa', 2000);
      const key = unique('refund-inv_1');
      const first = await gateway.refund({ paymentId: paymentId!, amountMinor: 500, idempotencyKey: key });
      const again = await gateway.refund({ paymentId: paymentId!, amountMinor: 500, idempotencyKey: key });
      assert.deepEqual(again, first);
      assert.equal((await gateway.getPayment(paymentId!))?.amountRefundedMinor, 500);
      await assert.rejects(gateway.refund({ paymentId: paymentId!, amountMinor: 600, idempotencyKey: key }), rejected('idempotency_key_reused', 409));
    });

    it('refuses to refund a declined or unknown payment', async () => {
      const declined = await charge('tok_hard_decline');
      await assert.rejects(gateway.refund({ paymentId: declined.paymentId!, amountMinor: 100, idempotencyKey: unique('re') }), rejected('charge_not_refundable'));
      await assert.rejects(gateway.refund({ paymentId: 'ch_nope', amountMinor: 100, idempotencyKey: unique('re') }), rejected('resource_missing', 404));
    });
  });

  describe('settlement report', () => {
    let now = new Date('2026-03-14T09:00:00.000Z');
    let clocked: SandboxGateway;
    let client: PaymentGateway;

    before(async () => {
      clocked = await startSandboxGateway({ webhookSecret: SECRET, clock: () => now, chargebackAfterMs: 0 });
      client = createSandboxGateway({ baseUrl: clocked.url, webhookSecret: SECRET });
    });
    after(() => clocked.stop());

    const pay = (paymentMethod: string, amountMinor: number, currency = 'USD') =>
      client.charge({ amountMinor, currency, paymentMethod, idempotencyKey: unique('key') });

    it('lists the day’s payments, refunds, chargebacks and fees, and gross − fees = net per currency', async () => {
      now = new Date('2026-03-13T23:59:59.999Z');
      await pay('tok_visa', 7777); // the day before
      now = new Date('2026-03-14T00:00:00.000Z');
      const big = await pay('tok_visa', 10_000); // fee 320
      now = new Date('2026-03-14T10:00:00.000Z');
      await pay('tok_visa', 2000); // fee 88
      await pay('tok_hard_decline', 5000); // declines are not settled
      await client.refund({ paymentId: big.paymentId!, amountMinor: 500, idempotencyKey: unique('re') });
      const disputed = await pay('tok_chargeback', 3000); // fee 117, then a chargeback of 3000 and its 1500 fee
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await client.getPayment(disputed.paymentId!))?.disputed, true);
      await pay('tok_visa', 1000, 'EUR'); // fee 59
      now = new Date('2026-03-15T00:00:00.000Z');
      await pay('tok_visa', 8888); // the day after

      const report = await client.settlementReport({ date: '2026-03-14' });
      assert.equal(report.date, '2026-03-14');
      assert.equal(report.lines.length, 7);
      const times = report.lines.map((l) => l.occurredAt);
      assert.deepEqual(times, [...times].sort(), 'lines in time order');
      const byType = (type: string) => report.lines.filter((l) => l.type === type).map((l) => l.amountMinor).sort((a, b) => a - b);
      assert.deepEqual(
        report.lines.filter((l) => l.type === 'payment').map((l) => [l.amountMinor, l.feeMinor]).sort((a, b) => a[0]! - b[0]!),
        [[1000, 59], [2000, 88], [3000, 117], [10_000, 320]],
      );
      assert.deepEqual(byType('refund'), [-500]);
      assert.deepEqual(byType('chargeback'), [-3000]);
      assert.deepEqual(report.lines.filter((l) => l.type === 'fee').map((l) => l.feeMinor), [1500]);
      const chargeback = report.lines.find((l) => l.type === 'chargeback');
      assert.equal(chargeback?.paymentId, disputed.paymentId);
      assert.deepEqual(report.totals, {
        USD: { gross: 10_000 + 2000 + 3000 - 500 - 3000, fees: 320 + 88 + 117 + 1500, net: 11_500 - 2025 },
        EUR: { gross: 1000, fees: 59, net: 941 },
      });
      for (const t of Object.values(report.totals)) assert.equal(t.gross - t.fees, t.net);
      for (const l of report.lines) assert.ok(l.occurredAt >= '2026-03-14T00:00:00.000Z' && l.occurredAt < '2026-03-15T00:00:00.000Z', l.occurredAt);
    });

    it('reports an empty day as no lines and no totals', async () => {
      assert.deepEqual(await client.settlementReport({ date: '2020-01-01' }), { date: '2020-01-01', lines: [], totals: {} });
    });

    it('refuses a date that is not a real day', async () => {
      await assert.rejects(client.settlementReport({ date: '2026-02-30' }), rejected('parameter_invalid'));
      const res = await fetch(`${clocked.url}/v1/settlements/2026-13-01`);
      assert.equal(res.status, 400);
    });
  });

  describe('persistence', () => {
    it('keeps payments, refunds, idempotency keys and decline counters across a restart', async () => {
      const tmp = tempDir();
      const stateFile = path.join(tmp.dir, 'sandbox.json');
      try {
        const key = unique('inv_9-attempt_1');
        const soft = unique('tok_soft_decline');
        let running = await startSandboxGateway({ webhookSecret: SECRET, stateFile });
        let client = createSandboxGateway({ baseUrl: running.url, webhookSecret: SECRET });
        const paid = await client.charge({ amountMinor: 5000, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: key });
        await client.refund({ paymentId: paid.paymentId!, amountMinor: 1200, idempotencyKey: unique('re') });
        assert.equal((await client.charge({ amountMinor: 700, currency: 'USD', paymentMethod: soft, idempotencyKey: unique('key') })).declineCode, 'soft_decline');
        await running.stop();

        running = await startSandboxGateway({ webhookSecret: SECRET, stateFile });
        client = createSandboxGateway({ baseUrl: running.url, webhookSecret: SECRET });
        try {
          const again = await client.charge({ amountMinor: 5000, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: key });
          assert.equal(again.paymentId, paid.paymentId);
          assert.equal((await chargesWithKey(running.url, key)).length, 1);
          assert.equal((await client.getPayment(paid.paymentId!))?.amountRefundedMinor, 1200);
          await assert.rejects(
            client.charge({ amountMinor: 5001, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: key }),
            rejected('idempotency_key_reused'),
          );
          // The first soft decline was remembered: one more decline, then approval.
          assert.equal((await client.charge({ amountMinor: 700, currency: 'USD', paymentMethod: soft, idempotencyKey: unique('key') })).declineCode, 'soft_decline');
          assert.equal((await client.charge({ amountMinor: 700, currency: 'USD', paymentMethod: soft, idempotencyKey: unique('key') })).status, 'succeeded');
          assert.equal((await sandboxCharges(running.url)).length, 4);
        } finally {
          await running.stop();
        }
        assert.deepEqual(fs.readdirSync(tmp.dir), ['sandbox.json'], 'no temporary file left behind');
      } finally {
        tmp.remove();
      }
    });

    it('refuses to start on a state file it cannot read, rather than starting empty', async () => {
      const tmp = tempDir();
      try {
        const stateFile = path.join(tmp.dir, 'sandbox.json');
        fs.writeFileSync(stateFile, '{"version": 1, "charges": ');
        await assert.rejects(startSandboxGateway({ webhookSecret: SECRET, stateFile }), /sandbox\.json is not readable sandbox gateway state/);
      } finally {
        tmp.remove();
      }
    });
  });

  describe('standalone configuration (gateway/main.ts)', () => {
    it('has defaults that work with nothing set', () => {
      const config = loadSandboxGatewayConfig({ CLOSELOOP_STATE_DIR: '/tmp/closeloop-state' });
      assert.deepEqual(config, {
        port: 4242,
        host: '127.0.0.1',
        webhookUrl: undefined,
        webhookSecret: DEV_SANDBOX_WEBHOOK_SECRET,
        stateFile: '/tmp/closeloop-state/sandbox-gateway.json',
        timeoutDelayMs: 35_000,
        chargebackAfterMs: 10_000,
      });
    });

    it('reads every variable, and names the bad one', () => {
      const config = loadSandboxGatewayConfig({
        SANDBOX_GATEWAY_PORT: '0',
        SANDBOX_WEBHOOK_URL: 'http://127.0.0.1:3000/v1/webhooks/gateway',
        SANDBOX_WEBHOOK_SECRET: 'whsec_x',
        SANDBOX_STATE_FILE: '/tmp/x/state.json',
        SANDBOX_TIMEOUT_DELAY_MS: '500',
        SANDBOX_CHARGEBACK_AFTER_MS: '60000',
      });
      assert.equal(config.port, 0);
      assert.equal(config.webhookUrl, 'http://127.0.0.1:3000/v1/webhooks/gateway');
      assert.equal(config.webhookSecret, 'whsec_x');
      assert.equal(config.stateFile, '/tmp/x/state.json');
      assert.equal(config.timeoutDelayMs, 500);
      assert.equal(config.chargebackAfterMs, 60_000);
      for (const [name, value] of [
        ['SANDBOX_GATEWAY_PORT', '70000'],
        ['SANDBOX_GATEWAY_PORT', 'abc'],
        ['SANDBOX_WEBHOOK_URL', 'ftp://x'],
        ['SANDBOX_TIMEOUT_DELAY_MS', '-1'],
      ] as const) {
        assert.throws(() => loadSandboxGatewayConfig({ [name]: value }), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${name} `));
      }
    });

    it('serves with its configuration on a free port', async () => {
      const tmp = tempDir();
      const running = await startSandboxGateway({ ...loadSandboxGatewayConfig({ SANDBOX_GATEWAY_PORT: '0', SANDBOX_STATE_FILE: path.join(tmp.dir, 's.json') }) });
      try {
        const client = createSandboxGateway({ baseUrl: running.url, webhookSecret: DEV_SANDBOX_WEBHOOK_SECRET });
        assert.equal((await client.charge({ amountMinor: 100, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: unique('k') })).status, 'succeeded');
        assert.ok(fs.existsSync(path.join(tmp.dir, 's.json')));
      } finally {
        await running.stop();
        tmp.remove();
      }
    });
  });

  describe('API key', () => {
    it('refuses requests without the key when one is configured', async () => {
      const guarded = await startSandboxGateway({ webhookSecret: SECRET, apiKey: 'sk_sandbox_1' });
      try {
        const without = createSandboxGateway({ baseUrl: guarded.url, webhookSecret: SECRET });
        await assert.rejects(without.charge({ amountMinor: 100, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: unique('k') }), rejected('invalid_api_key', 401));
        const withKey = createSandboxGateway({ baseUrl: guarded.url, webhookSecret: SECRET, apiKey: 'sk_sandbox_1' });
        assert.equal((await withKey.charge({ amountMinor: 100, currency: 'USD', paymentMethod: 'tok_visa', idempotencyKey: unique('k') })).status, 'succeeded');
      } finally {
        await guarded.stop();
      }
    });
  });
});
