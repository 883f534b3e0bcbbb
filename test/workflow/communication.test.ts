/**
 * The communication workflow on the time-skipping server with the real bundle and the real
 * activities: PostgreSQL for records and preferences, the loopback SMTP sink for email and a
 * loopback HTTP server for webhooks.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createCommunicationActivities, messageKey, WEBHOOK_DELIVERY_HEADER, webhookSignature, WEBHOOK_SIGNATURE_HEADER } from '../../activities/communications';
import { getPreferences, putPreferences } from '../../data/communications';
import { quietHoursEnd } from '../../domain/communication';
import type { Policy } from '../../domain/policies';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { createMailer, Mailer } from '../../infra/mailer';
import { communicationWorkflow } from '../../workflows/communication';
import { CommunicationRequest, communicationWorkflowId } from '../../workflows/shared';
import { setPolicy } from '../support/fixtures';
import { testSmtpSink } from '../support/global';
import { TEST_LINK_SECRET, testActivities, testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const NO_QUIET_HOURS: Policy<'communication'> = { quietHours: null, defaultTimeZone: 'UTC', optOutAllowed: ['marketing', 'usage', 'nurture', 'upgrade_offers'] };

/** "HH:MM" on the wall clock of `timeZone` at `instant`. */
function wallTime(instant: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(instant);
}

interface Received {
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** A customer's webhook endpoint on loopback: answers each request with the next status of `statuses` (then 200). */
async function webhookReceiver(statuses: number[]): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
      res.statusCode = statuses.shift() ?? 200;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/closeloop`, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('communication workflow (time-skipping server, real activities, SMTP and webhooks on loopback)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let db: Db;

  before(async function () {
    this.timeout(180_000);
    await workflowBundle();
    db = testDb();
  });
  // A fresh server per test: time skipping is global to a server.
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

  /** A brand of its own (its communication policy is the test's) with one customer. */
  async function customer(policy: Policy<'communication'> = NO_QUIET_HOURS) {
    const brandId = uniqueId('msg').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brandId, name: 'Msg Test Co', currency: 'USD', mode: 'sandbox' });
    await setPolicy(db, brandId, 'communication', policy);
    const customerId = uniqueId('cus');
    const email = `${customerId}@example.com`;
    await db('customers').insert({ brand_id: brandId, id: customerId, email, name: 'Ada', stage: 'active', workflow_id: `customer-${brandId}:${customerId}` });
    const request = (over: Partial<CommunicationRequest> = {}): CommunicationRequest => ({
      brandId,
      customerId,
      dedupeKey: uniqueId('event'),
      category: 'transactional',
      template: 'welcome',
      recipient: email,
      data: { plan: 'Pro' },
      ...over,
    });
    return { brandId, customerId, email, request };
  }

  async function worker(taskQueue: string): Promise<Worker> {
    return Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
  }

  const record = (brandId: string, dedupeKey: string) => db('outbound_messages').where({ brand_id: brandId, dedupe_key: dedupeKey }).first();
  const mailsTo = (email: string) => testSmtpSink().messages().filter((m) => m.to.includes(email));

  function start(taskQueue: string, req: CommunicationRequest, workflowId = communicationWorkflowId(req.brandId, req.dedupeKey)) {
    return env.client.workflow.start(communicationWorkflow, { workflowId, taskQueue, args: [req], workflowIdReusePolicy: 'REJECT_DUPLICATE' });
  }

  it('does not send a category the customer opted out of, and records it suppressed; transactional messages still go', async () => {
    const taskQueue = uniqueId('tq');
    const c = await customer();
    await putPreferences(db, c.brandId, c.customerId, { optedOut: ['marketing', 'usage'], timeZone: null, channel: 'email', webhookUrl: null });
    await (await worker(taskQueue)).runUntil(async () => {
      const offer = c.request({ category: 'marketing', template: 'spring-newsletter', data: {} });
      const usage = c.request({ category: 'usage', template: 'usage-allowance-80', data: { metric: 'api_calls', threshold: 80, quantity: 800, included: 1000 } });
      const welcome = c.request();
      assert.deepEqual(await (await start(taskQueue, offer)).result(), { status: 'suppressed', reason: 'opted_out:marketing' });
      assert.deepEqual(await (await start(taskQueue, usage)).result(), { status: 'suppressed', reason: 'opted_out:usage' });
      const sent = await (await start(taskQueue, welcome)).result();
      assert.equal(sent.status, 'sent');

      const mail = await testSmtpSink().waitFor((m) => m.to.includes(c.email));
      assert.equal(mail.subject, 'Welcome to Msg Test Co');
      assert.match(mail.text, /Hello Ada,[\s\S]*Your Pro plan is active\./);
      assert.match(mail.html, /Your Pro plan is active\./);
      assert.equal(mail.messageId, `<${messageKey(c.brandId, welcome.dedupeKey)}@closeloop.test>`);
      assert.equal(mailsTo(c.email).length, 1);

      const suppressed = await record(c.brandId, offer.dedupeKey);
      assert.equal(suppressed.status, 'suppressed');
      assert.equal(suppressed.reason, 'opted_out:marketing');
      assert.equal(suppressed.attempts, 0);
      const delivered = await record(c.brandId, welcome.dedupeKey);
      assert.equal(delivered.status, 'sent');
      assert.equal(delivered.attempts, 1);
      assert.equal(delivered.subject, 'Welcome to Msg Test Co');
      assert.ok(delivered.sent_at instanceof Date);
    });
  });

  it('sends a transactional message even when the customer tried to opt out of it', async () => {
    const taskQueue = uniqueId('tq');
    const c = await customer();
    // The API refuses this; the rule holds in the workflow too, whatever the table says.
    await db('communication_preferences').insert({ brand_id: c.brandId, customer_id: c.customerId, opted_out: ['transactional'] });
    await (await worker(taskQueue)).runUntil(async () => {
      assert.equal((await (await start(taskQueue, c.request())).result()).status, 'sent');
    });
  });

  it("holds a message requested in the customer's quiet hours until they end, on a durable timer; transactional ones go at once", async () => {
    const taskQueue = uniqueId('tq');
    // Quiet hours around "now" on the customer's wall clock (Kolkata, UTC+05:30, not the brand's UTC).
    const zone = 'Asia/Kolkata';
    const requestedAt = new Date(await env.currentTimeMs());
    const quietHours = { start: wallTime(new Date(requestedAt.getTime() - 60 * 60_000), zone), end: wallTime(new Date(requestedAt.getTime() + 3 * 60 * 60_000), zone) };
    const c = await customer({ quietHours, defaultTimeZone: 'UTC', optOutAllowed: ['marketing'] });
    await putPreferences(db, c.brandId, c.customerId, { optedOut: [], timeZone: zone, channel: 'email', webhookUrl: null });
    const expectedEnd = quietHoursEnd(requestedAt, zone, quietHours);
    assert.ok(expectedEnd.getTime() - requestedAt.getTime() > 2 * 60 * 60_000, 'the test must start well inside quiet hours');

    await (await worker(taskQueue)).runUntil(async () => {
      const req = c.request({ category: 'usage', template: 'usage-allowance-80', data: { metric: 'api_calls', threshold: 80, quantity: 800, included: 1000 } });
      const handle = await start(taskQueue, req);
      const result = await handle.result();
      assert.equal(result.status, 'sent');
      assert.ok(Date.parse(result.deliveredAt!) >= expectedEnd.getTime(), `delivered at ${result.deliveredAt}, quiet hours end ${expectedEnd.toISOString()}`);

      const row = await record(c.brandId, req.dedupeKey);
      assert.equal(row.status, 'sent');
      assert.equal(row.scheduled_for.toISOString(), expectedEnd.toISOString());

      // The wait is a timer in the history, and delivery was scheduled only after it fired.
      const events = (await handle.fetchHistory()).events ?? [];
      assert.ok(events.some((e) => e.timerStartedEventAttributes), 'a timer was started');
      const fired = events.find((e) => e.timerFiredEventAttributes);
      assert.ok(fired && Number(fired.eventTime!.seconds) * 1000 >= expectedEnd.getTime() - 1000);
      const deliverScheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverMessage');
      assert.equal(deliverScheduled.length, 1);
      assert.ok(Number(deliverScheduled[0]!.eventId) > Number(fired!.eventId));

      const mail = await testSmtpSink().waitFor((m) => m.to.includes(c.email));
      assert.equal(mail.subject, 'You have used 80% of your api_calls allowance');
      assert.match(mail.text, /\(800 of 1000\)/);

      // A transactional message in the same quiet hours goes at once, without a timer.
      const urgent = c.request({ template: 'payment-failed', data: { message: 'Insufficient funds' } });
      const urgentHandle = await start(taskQueue, urgent);
      const urgentResult = await urgentHandle.result();
      assert.equal(urgentResult.status, 'sent');
      assert.ok(!(await urgentHandle.fetchHistory()).events?.some((e) => e.timerStartedEventAttributes));
      assert.equal((await record(c.brandId, urgent.dedupeKey)).scheduled_for, null);
    });
  });

  it('sends the same event once: a second start with the same id, and a later workflow with the same dedupe key', async () => {
    const taskQueue = uniqueId('tq');
    const c = await customer();
    await (await worker(taskQueue)).runUntil(async () => {
      const req = c.request({ template: 'dispute-opened', data: { invoiceId: 'inv_x', amountMinor: 1250, currency: 'USD', reason: 'duplicate charge' } });
      const first = await start(taskQueue, req);
      await assert.rejects(start(taskQueue, req), WorkflowExecutionAlreadyStartedError);
      assert.equal((await first.result()).status, 'sent');
      // The same event again once the first run is closed: the id is taken for good...
      await assert.rejects(start(taskQueue, req), WorkflowExecutionAlreadyStartedError);
      // ...and a run under another id still finds the message already sent.
      const again = await start(taskQueue, req, `${communicationWorkflowId(req.brandId, req.dedupeKey)}-again`);
      assert.deepEqual(await again.result(), { status: 'duplicate', reason: 'already sent' });

      const mail = await testSmtpSink().waitFor((m) => m.to.includes(c.email));
      assert.match(mail.text, /over USD 12\.50 \(duplicate charge\)/);
      // Give a stray second delivery the chance to arrive before counting.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(mailsTo(c.email).length, 1);
      assert.equal((await record(c.brandId, req.dedupeKey)).attempts, 1);
    });
  });

  it('delivers by signed webhook when the customer chose it, retrying a failing endpoint with backoff', async () => {
    const taskQueue = uniqueId('tq');
    const c = await customer();
    const hook = await webhookReceiver([503, 500]);
    try {
      await putPreferences(db, c.brandId, c.customerId, { optedOut: [], timeZone: null, channel: 'webhook', webhookUrl: hook.url });
      const { webhookSecret } = await getPreferences(db, c.brandId, c.customerId);
      await (await worker(taskQueue)).runUntil(async () => {
        const req = c.request({ template: 'plan-changed', data: { fromPlan: 'Basic', toPlan: 'Pro', prorationMinor: 1500, currency: 'USD' } });
        const handle = await start(taskQueue, req);
        const result = await handle.result();
        assert.equal(result.status, 'sent');
        assert.equal(result.channel, 'webhook');

        assert.equal(hook.received.length, 3);
        const ids = new Set(hook.received.map((r) => r.headers[WEBHOOK_DELIVERY_HEADER.toLowerCase()]));
        assert.deepEqual([...ids], [messageKey(c.brandId, req.dedupeKey)]);
        for (const r of hook.received) assert.equal(r.headers[WEBHOOK_SIGNATURE_HEADER.toLowerCase()], webhookSignature(webhookSecret!, r.body));
        const payload = JSON.parse(hook.received[2]!.body);
        assert.equal(payload.template, 'plan-changed');
        assert.equal(payload.customerId, c.customerId);
        assert.match(payload.text, /from Basic to Pro\.[\s\S]*USD 15\.00/);

        // Retried by the activity's retry policy, backing off exponentially: the third attempt got through.
        const events = (await handle.fetchHistory()).events ?? [];
        const started = events.find((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt === 3);
        assert.ok(started, 'the third attempt succeeded');
        const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverMessage')!.activityTaskScheduledEventAttributes!;
        assert.equal(Number(scheduled.retryPolicy?.initialInterval?.seconds), 30);
        assert.equal(scheduled.retryPolicy?.backoffCoefficient, 2);
        assert.equal(scheduled.retryPolicy?.maximumAttempts, 8);
        const row = await record(c.brandId, req.dedupeKey);
        assert.equal(row.status, 'sent');
        assert.equal(row.channel, 'webhook');
        assert.equal(row.attempts, 3);
        assert.equal(row.error, null);
        assert.equal(mailsTo(c.email).length, 0);
      });
    } finally {
      await hook.close();
    }
  });

  it('records a message failed when its webhook refuses it, and completes without failing', async () => {
    const taskQueue = uniqueId('tq');
    const c = await customer();
    const hook = await webhookReceiver([410]);
    try {
      await putPreferences(db, c.brandId, c.customerId, { optedOut: [], timeZone: null, channel: 'webhook', webhookUrl: hook.url });
      await (await worker(taskQueue)).runUntil(async () => {
        const req = c.request({ template: 'service-suspended', data: {} });
        const result = await (await start(taskQueue, req)).result();
        assert.equal(result.status, 'failed');
        assert.match(result.reason!, /^WEBHOOK_REJECTED: .*answered 410/);
        assert.equal(hook.received.length, 1);
        const row = await record(c.brandId, req.dedupeKey);
        assert.equal(row.status, 'failed');
        assert.match(row.error, /WEBHOOK_REJECTED/);
      });
    } finally {
      await hook.close();
    }
  });
});

describe('message delivery activity (real PostgreSQL and SMTP sink)', () => {
  let db: Db;
  let mailer: Mailer;
  before(() => {
    db = testDb();
    const sink = testSmtpSink();
    mailer = createMailer({ host: sink.host, port: sink.port, from: 'billing@closeloop.test' });
  });
  after(async () => {
    mailer?.close();
    await db?.destroy();
  });

  it('resends a message whose send crashed before it was recorded with the same Message-ID, and never after it was', async () => {
    const brandId = uniqueId('dlv').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brandId, name: 'Delivery Co', currency: 'USD', mode: 'sandbox' });
    const customerId = uniqueId('cus');
    const email = `${customerId}@example.com`;
    await db('customers').insert({ brand_id: brandId, id: customerId, email, name: null, stage: 'active', workflow_id: `customer-${brandId}:${customerId}` });
    // The first send reaches the mail server, then the worker "dies" before recording it.
    let crashes = 1;
    const crashing: Mailer = {
      async send(mail) {
        const sent = await mailer.send(mail);
        if (crashes-- > 0) throw new Error('worker lost after the SMTP send');
        return sent;
      },
      close: () => undefined,
    };
    const acts = createCommunicationActivities({ db, mailer: crashing, publicUrl: 'http://127.0.0.1:3000', linkSecret: TEST_LINK_SECRET });
    const req: CommunicationRequest = { brandId, customerId, dedupeKey: uniqueId('event'), category: 'transactional', template: 'service-restored', recipient: email, data: {} };
    assert.equal((await acts.prepareMessage({ request: req, workflowId: 'test' })).outcome, 'send');
    const message = { brandId, dedupeKey: req.dedupeKey };

    await assert.rejects(acts.deliverMessage(message), /worker lost/);
    const retrying = await db('outbound_messages').where({ brand_id: brandId, dedupe_key: req.dedupeKey }).first();
    assert.deepEqual([retrying.status, retrying.attempts, retrying.error], ['queued', 1, 'worker lost after the SMTP send']);

    assert.deepEqual(await acts.deliverMessage(message), { sent: true, channel: 'email', messageId: `<${messageKey(brandId, req.dedupeKey)}@closeloop.test>` });
    assert.equal((await acts.deliverMessage(message)).sent, false, 'a retry after success sends nothing');

    await testSmtpSink().waitFor((m) => m.to.includes(email));
    await new Promise((r) => setTimeout(r, 300));
    const copies = testSmtpSink().messages().filter((m) => m.to.includes(email));
    assert.equal(copies.length, 2);
    assert.equal(new Set(copies.map((m) => m.messageId)).size, 1, 'both copies are recognisably one message');
    const done = await db('outbound_messages').where({ brand_id: brandId, dedupe_key: req.dedupeKey }).first();
    assert.deepEqual([done.status, done.attempts, done.error], ['sent', 2, null]);
  });
});
