/**
 * Customer communication over HTTP: preferences with their validation, the operator's list of a
 * customer's messages, brand templates, and the messages a real sign-up causes, delivered by
 * the real worker to the loopback SMTP sink.
 */
import assert from 'node:assert/strict';
import { seedPlans, setPolicy, TEST_OFFER_RULES } from '../support/fixtures';
import { testSmtpSink } from '../support/global';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

describe('communications over HTTP (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    a = await stack.brand({ name: 'Comms Co' });
    b = await stack.brand();
    await seedPlans(stack.db, a.id);
    await setPolicy(stack.db, a.id, 'offers', TEST_OFFER_RULES);
    // Customers may opt out of marketing only; no quiet hours, so mail arrives whatever the hour.
    await setPolicy(stack.db, a.id, 'communication', { quietHours: null, defaultTimeZone: 'America/New_York', optOutAllowed: ['marketing'] });
  });

  after(async () => {
    await stack?.stop();
  });

  const call = (method: string, path: string, body?: unknown, key: string = a.key) => stack.call(method, path, { key, body });

  async function customerRow(brandId = a.id): Promise<string> {
    const id = uniqueId('cus');
    await stack.db('customers').insert({ brand_id: brandId, id, email: `${id}@example.com`, name: null, stage: 'active', workflow_id: `customer-${brandId}:${id}` });
    return id;
  }

  const fields = (res: { json: any }) => (res.json?.error?.details ?? []).map((d: { field: string }) => d.field);

  describe('preferences', () => {
    it('reads defaults, then stores opt-outs, time zone and a webhook with its signing secret', async () => {
      const id = await customerRow();
      const initial = await call('GET', `/v1/customers/${id}/communication-preferences`);
      assert.equal(initial.status, 200, initial.text);
      assert.deepEqual(initial.json, {
        optedOut: [],
        timeZone: null,
        effectiveTimeZone: 'America/New_York',
        channel: 'email',
        webhookUrl: null,
        webhookSecret: null,
        optOutAllowed: ['marketing'],
        updatedAt: null,
      });

      const put = await call('PUT', `/v1/customers/${id}/communication-preferences`, {
        optedOut: ['marketing'],
        timeZone: 'Europe/Berlin',
        channel: 'webhook',
        webhookUrl: 'http://127.0.0.1:9/hooks',
      });
      assert.equal(put.status, 200, put.text);
      assert.deepEqual(put.json.optedOut, ['marketing']);
      assert.equal(put.json.effectiveTimeZone, 'Europe/Berlin');
      assert.equal(put.json.channel, 'webhook');
      assert.match(put.json.webhookSecret, /^whsec_/);

      // Back to email: the secret stays, so a later webhook keeps verifying with it.
      const back = await call('PUT', `/v1/customers/${id}/communication-preferences`, { optedOut: [], channel: 'email' });
      assert.equal(back.status, 200, back.text);
      assert.equal(back.json.webhookSecret, put.json.webhookSecret);
      assert.deepEqual((await call('GET', `/v1/customers/${id}/communication-preferences`)).json, back.json);
    });

    it('refuses opting out of transactional messages and of categories the brand does not allow, naming the field', async () => {
      const id = await customerRow();
      const transactional = await call('PUT', `/v1/customers/${id}/communication-preferences`, { optedOut: ['marketing', 'transactional'] });
      assert.equal(transactional.status, 400, transactional.text);
      assert.deepEqual(fields(transactional), ['body.optedOut.1']);
      assert.match(transactional.json.error.details[0].message, /transactional messages cannot be opted out of/);

      const usage = await call('PUT', `/v1/customers/${id}/communication-preferences`, { optedOut: ['usage'] });
      assert.equal(usage.status, 400);
      assert.deepEqual(fields(usage), ['body.optedOut.0']);

      const unknown = await call('PUT', `/v1/customers/${id}/communication-preferences`, { optedOut: ['spam'] });
      assert.equal(unknown.status, 400);
      assert.deepEqual(fields(unknown), ['body.optedOut.0']);
      // Nothing was stored by the refused changes.
      assert.equal((await call('GET', `/v1/customers/${id}/communication-preferences`)).json.updatedAt, null);
    });

    it('refuses invalid time zones, a webhook channel without a URL, bad URLs and unknown fields', async () => {
      const id = await customerRow();
      const path = `/v1/customers/${id}/communication-preferences`;
      assert.deepEqual(fields(await call('PUT', path, { timeZone: 'Mars/Olympus' })), ['body.timeZone']);
      assert.deepEqual(fields(await call('PUT', path, { timeZone: '+01:00' })), ['body.timeZone']);
      assert.deepEqual(fields(await call('PUT', path, { channel: 'webhook' })), ['body.webhookUrl']);
      assert.deepEqual(fields(await call('PUT', path, { channel: 'webhook', webhookUrl: 'ftp://example.com/x' })), ['body.webhookUrl']);
      assert.deepEqual(fields(await call('PUT', path, { channel: 'sms' })), ['body.channel']);
      assert.deepEqual(fields(await call('PUT', path, { quietHours: null })), ['body.quietHours']);
    });

    it("answers 404 for an unknown customer and for another brand's customer", async () => {
      const unknown = await call('GET', `/v1/customers/${uniqueId('nobody')}/communication-preferences`);
      assert.equal(unknown.status, 404);
      const theirs = await customerRow(b.id);
      assert.equal((await call('GET', `/v1/customers/${theirs}/communication-preferences`)).status, 404);
      assert.equal((await call('PUT', `/v1/customers/${theirs}/communication-preferences`, { optedOut: [] })).status, 404);
      assert.equal((await call('GET', `/v1/customers/${theirs}/communications`)).status, 404);
      assert.equal((await call('GET', `/v1/customers/${theirs}/communications`, undefined, b.key)).status, 200);
    });
  });

  describe('message list', () => {
    it('pages through a customer’s messages newest first with every field an operator needs', async () => {
      const id = await customerRow();
      for (let i = 0; i < 5; i += 1) {
        await stack.db('outbound_messages').insert({
          brand_id: a.id,
          customer_id: id,
          dedupe_key: `test:${id}:${i}`,
          category: i === 4 ? 'marketing' : 'transactional',
          template: `t-${i}`,
          recipient: `${id}@example.com`,
          status: i === 4 ? 'suppressed' : 'sent',
          reason: i === 4 ? 'opted_out:marketing' : null,
          attempts: i === 4 ? 0 : 1,
        });
      }
      const first = await call('GET', `/v1/customers/${id}/communications?limit=2`);
      assert.equal(first.status, 200, first.text);
      assert.deepEqual(first.json.data.map((m: { template: string }) => m.template), ['t-4', 't-3']);
      const newest = first.json.data[0];
      assert.equal(newest.status, 'suppressed');
      assert.equal(newest.reason, 'opted_out:marketing');
      assert.equal(newest.category, 'marketing');
      assert.equal(newest.dedupeKey, `test:${id}:4`);
      for (const key of ['id', 'channel', 'attempts', 'scheduledFor', 'sentAt', 'createdAt', 'subject', 'messageId', 'error']) assert.ok(key in newest, key);

      const second = await call('GET', `/v1/customers/${id}/communications?limit=2&cursor=${first.json.nextCursor}`);
      assert.deepEqual(second.json.data.map((m: { template: string }) => m.template), ['t-2', 't-1']);
      const last = await call('GET', `/v1/customers/${id}/communications?limit=2&cursor=${second.json.nextCursor}`);
      assert.deepEqual(last.json.data.map((m: { template: string }) => m.template), ['t-0']);
      assert.equal(last.json.nextCursor, null);

      assert.deepEqual(fields(await call('GET', `/v1/customers/${id}/communications?limit=0`)), ['query.limit']);
      assert.deepEqual(fields(await call('GET', `/v1/customers/${id}/communications?cursor=abc`)), ['query.cursor']);
    });
  });

  describe('templates', () => {
    it('shows the library version until the brand sets its own, and refuses malformed placeholders', async () => {
      const library = await call('GET', '/v1/templates/welcome');
      assert.equal(library.status, 200, library.text);
      assert.equal(library.json.origin, 'library');
      assert.equal(library.json.subject, 'Welcome to {{brandName}}');
      assert.equal((await call('GET', '/v1/templates/no-such-template')).status, 404);
      assert.deepEqual(fields(await call('GET', '/v1/templates/Bad%20Name')), ['params.name']);

      const broken = await call('PUT', '/v1/templates/welcome', { subject: 'Hi {{name', text: '{{#plan}}open', html: '<p>ok</p>' });
      assert.equal(broken.status, 400);
      assert.deepEqual(fields(broken), ['body.subject', 'body.text']);
      assert.deepEqual(fields(await call('PUT', '/v1/templates/welcome', { subject: 'x', text: 'y' })), ['body.html']);
    });

    it("sends the brand's own template, with the customer's data, to a customer who signs up", async () => {
      const own = await call('PUT', '/v1/templates/welcome', {
        subject: 'Ahoy from {{brandName}}',
        text: '{{greeting}}\n\nYour {{plan}} plan is ready.\n',
        html: '<p>{{greeting}}</p><p>Your <b>{{plan}}</b> plan is ready.</p>',
      });
      assert.equal(own.status, 200, own.text);
      assert.equal(own.json.origin, 'brand');
      assert.equal(own.json.version, 1);
      assert.equal((await call('GET', '/v1/templates/welcome')).json.subject, 'Ahoy from {{brandName}}');
      const list = await call('GET', '/v1/templates');
      assert.equal(list.status, 200, list.text);
      const entries = new Map(list.json.data.map((t: { name: string; origin: string }) => [t.name, t.origin]));
      assert.equal(entries.get('welcome'), 'brand');
      assert.equal(entries.get('invoice-ready'), 'library');
      assert.equal((await call('GET', '/v1/templates', undefined, b.key)).json.data.find((t: { name: string }) => t.name === 'welcome').origin, 'library');

      const id = uniqueId('cus');
      const email = `${id}@example.com`;
      const signup = await call('POST', '/v1/customers', { id, email, name: 'Grace <Hopper>', plan: 'pro', paymentMethod: 'tok_visa' });
      assert.equal(signup.status, 201, signup.text);

      const welcome = await testSmtpSink().waitFor((m) => m.to.includes(email) && m.subject.startsWith('Ahoy'), 20_000);
      assert.equal(welcome.subject, 'Ahoy from Comms Co');
      assert.match(welcome.text, /Hello Grace <Hopper>,\s+Your Pro plan is ready\./);
      assert.match(welcome.html, /Hello Grace &lt;Hopper&gt;,/);
      // The invoice email is the invoice document's own, with its signed link and PDF.
      const invoice = await testSmtpSink().waitFor((m) => m.to.includes(email) && m.subject.startsWith('Invoice'), 20_000);
      assert.match(invoice.text, /\/v1\/shared\/invoices\/\S+\.html/);
      assert.equal(invoice.attachments.length, 1);

      const listed = await eventually(async () => {
        const res = await call('GET', `/v1/customers/${id}/communications`);
        return res.json.data.length >= 2 && res.json.data.every((m: { status: string }) => m.status === 'sent') ? res.json.data : undefined;
      }, 20_000);
      const byTemplate = new Map(listed.map((m: { template: string }) => [m.template, m]));
      assert.ok(byTemplate.has('welcome') && byTemplate.has('invoice-ready'), JSON.stringify(listed));
      const sent = byTemplate.get('welcome') as { subject: string; attempts: number; channel: string; sentAt: string };
      assert.equal(sent.subject, 'Ahoy from Comms Co');
      assert.equal(sent.channel, 'email');
      assert.equal(sent.attempts, 1);
      assert.ok(sent.sentAt);
    });
  });
});
