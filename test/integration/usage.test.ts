import assert from 'node:assert/strict';
import { defaultPayloadConverter } from '@temporalio/common';
import { customerWorkflowId } from '../../domain/ids';
import type { UsageThresholdCrossed } from '../../workflows/shared';
import { seedPlans, setPolicy, TEST_OFFER_RULES } from '../support/fixtures';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Usage ingest as a client app uses it: real HTTP, PostgreSQL, the Temporal dev server with the
 * real worker (for the customers and the threshold signals).
 */
describe('usage ingest over HTTP (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  /** api_calls is metered without an allowance; storage_gb includes 100 per period. */
  const USAGE_COMPONENTS = [
    { metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 0 },
    { metric: 'storage_gb', model: 'per_unit', unitPrice: '0.10', includedQuantity: 100 },
  ];

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    [a, b] = await Promise.all([stack.brand(), stack.brand()]);
    for (const brand of [a, b]) {
      await seedPlans(stack.db, brand.id);
      await setPolicy(stack.db, brand.id, 'offers', TEST_OFFER_RULES);
      await stack.db('plans').insert({
        brand_id: brand.id,
        code: 'metered',
        version: 1,
        name: 'Metered',
        currency: 'USD',
        recurring_fee_minor: 1000,
        cost_to_serve_minor: 100,
        billing_period: 'P1M',
        entitlements: JSON.stringify({ features: ['api'], quotas: {} }),
        usage_components: JSON.stringify(USAGE_COMPONENTS),
      });
    }
  });

  after(async () => {
    await stack?.stop();
  });

  const ingest = (customerId: string, events: unknown[], key = a.key) => stack.call('POST', `/v1/customers/${customerId}/usage`, { key, body: { events } });
  const usageRows = (brandId: string, customerId: string) => stack.db('usage_events').where({ brand_id: brandId, customer_id: customerId });
  const rowCount = async (brandId: string, customerId: string) => Number((await usageRows(brandId, customerId).count({ n: '*' }))[0]!.n);
  const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

  function calls(prefix: string, n: number, metric = 'api_calls') {
    return Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i}`, metric, quantity: 1, timestamp: minutesAgo(1) }));
  }

  async function activeCustomer(brand = a): Promise<string> {
    const id = uniqueId('cus');
    const res = await stack.call('POST', '/v1/customers', { key: brand.key, body: { id, email: 'meter@example.com', plan: 'metered', paymentMethod: 'tok_visa' } });
    assert.equal(res.status, 201, res.text);
    return id;
  }

  it('records a batch of 1,000 events once: the same batch again is all duplicates', async () => {
    const id = await activeCustomer();
    const batch = calls('evt', 1000);
    const first = await ingest(id, batch);
    assert.equal(first.status, 202, first.text);
    assert.deepEqual(first.json, { accepted: 1000, duplicates: 0, thresholds: [] });
    assert.equal(await rowCount(a.id, id), 1000);

    const again = await ingest(id, batch);
    assert.equal(again.status, 202, again.text);
    assert.deepEqual(again.json, { accepted: 0, duplicates: 1000, thresholds: [] });
    assert.equal(await rowCount(a.id, id), 1000);
  });

  it('counts new and repeated ids in one batch; the first write of an id wins, even with another quantity', async () => {
    const id = await activeCustomer();
    assert.equal((await ingest(id, [...calls('old', 5), { id: 'kept', metric: 'api_calls', quantity: '7', timestamp: minutesAgo(3) }])).status, 202);
    const res = await ingest(id, [
      ...calls('old', 5),
      ...calls('new', 3),
      { id: 'kept', metric: 'api_calls', quantity: '9999', timestamp: minutesAgo(1) },
      // Repeated within the batch: the first occurrence is stored, the second is a duplicate.
      { id: 'twice', metric: 'api_calls', quantity: '2', timestamp: minutesAgo(1) },
      { id: 'twice', metric: 'api_calls', quantity: '3', timestamp: minutesAgo(1) },
    ]);
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json, { accepted: 4, duplicates: 7, thresholds: [] });
    assert.equal(await rowCount(a.id, id), 10);
    const quantities = Object.fromEntries(
      (await usageRows(a.id, id).whereIn('event_id', ['kept', 'twice']).select('event_id', 'quantity')).map((r) => [r.event_id, r.quantity]),
    );
    assert.deepEqual(quantities, { kept: '7.000000000000', twice: '2.000000000000' });
  });

  it('rejects the whole batch when any event is bad, naming every bad field by index, and writes nothing', async () => {
    const id = await activeCustomer();
    const inTwoDays = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const res = await ingest(id, [
      { id: 'ok-0', metric: 'api_calls', quantity: 1, timestamp: minutesAgo(1) },
      { id: 'neg', metric: 'api_calls', quantity: -1, timestamp: minutesAgo(1) },
      { id: 'unknown-metric', metric: 'gpu_hours', quantity: 1, timestamp: minutesAgo(1) },
      { id: 'future', metric: 'api_calls', quantity: 1, timestamp: inTwoDays },
      { id: 'bad id!', metric: 'api_calls', quantity: 1, timestamp: minutesAgo(1) },
      { id: 'ok-5', metric: 'api_calls', quantity: 1, timestamp: minutesAgo(1) },
    ]);
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.code, 'VALIDATION_FAILED');
    const fields = res.json.error.details.map((d: { field: string }) => d.field).sort();
    assert.deepEqual(fields, ['body.events.1.quantity', 'body.events.2.metric', 'body.events.3.timestamp', 'body.events.4.id']);
    assert.match(res.json.error.message, /4 of 6 events/);
    assert.equal(await rowCount(a.id, id), 0, 'not even the good events were written');
  });

  it('answers 422 when events are well formed but not acceptable: a metric off the plan, a timestamp outside the window', async () => {
    const id = await activeCustomer();
    const res = await ingest(id, [
      { id: 'e0', metric: 'api_calls', quantity: 1, timestamp: minutesAgo(1) },
      { id: 'e1', metric: 'gpu_hours', quantity: 1, timestamp: minutesAgo(1) },
      { id: 'e2', metric: 'api_calls', quantity: 1, timestamp: new Date(Date.now() - 36 * 86_400_000).toISOString() },
      { id: 'e3', metric: 'api_calls', quantity: 1, timestamp: new Date(Date.now() + 10 * 60_000).toISOString() },
    ]);
    assert.equal(res.status, 422, res.text);
    assert.equal(res.json.error.code, 'USAGE_REJECTED');
    assert.deepEqual(
      res.json.error.details.map((d: { field: string }) => d.field),
      ['body.events.1.metric', 'body.events.2.timestamp', 'body.events.3.timestamp'],
    );
    assert.equal(await rowCount(a.id, id), 0);
  });

  it('accepts late events inside the window, left unbilled for the next invoice', async () => {
    const id = await activeCustomer();
    const late = new Date(Date.now() - 34 * 86_400_000).toISOString();
    const skewed = new Date(Date.now() + 4 * 60_000).toISOString();
    const res = await ingest(id, [
      { id: 'late', metric: 'api_calls', quantity: 1, timestamp: late },
      { id: 'ahead', metric: 'api_calls', quantity: 1, timestamp: skewed.replace('Z', '+00:00') },
    ]);
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.accepted, 2);
    const row = await usageRows(a.id, id).where({ event_id: 'late' }).first();
    assert.equal(row.invoice_id, null);
    assert.equal(new Date(row.occurred_at).toISOString(), late);
  });

  it('stores quantities exactly: "0.000001" reads back from numeric as the same decimal', async () => {
    const id = await activeCustomer();
    const res = await ingest(id, [
      { id: 'micro', metric: 'api_calls', quantity: '0.000001', timestamp: minutesAgo(1) },
      { id: 'number', metric: 'api_calls', quantity: 0.1, timestamp: minutesAgo(1) },
      { id: 'big', metric: 'api_calls', quantity: '999999999999999.999999', timestamp: minutesAgo(1), properties: { region: 'eu', retries: 2, cached: false } },
    ]);
    assert.equal(res.status, 202, res.text);
    const rows = await usageRows(a.id, id).orderBy('event_id').select('event_id', 'quantity', 'properties');
    assert.deepEqual(
      rows.map((r) => [r.event_id, r.quantity]),
      [
        ['big', '999999999999999.999999000000'],
        ['micro', '0.000001000000'],
        ['number', '0.100000000000'],
      ],
    );
    assert.deepEqual(rows[0]!.properties, { region: 'eu', retries: 2, cached: false });
    const [{ total }] = (await stack.db.raw('SELECT sum(quantity)::text AS total FROM usage_events WHERE brand_id = ? AND customer_id = ?', [a.id, id])).rows;
    assert.equal(total, '1000000000000000.100000000000');

    const bad = await ingest(id, [
      { id: 'float', metric: 'api_calls', quantity: 0.1 + 0.2, timestamp: minutesAgo(1) },
      { id: 'exp', metric: 'api_calls', quantity: 1e21, timestamp: minutesAgo(1) },
      { id: 'seven', metric: 'api_calls', quantity: '0.0000001', timestamp: minutesAgo(1) },
      { id: 'huge', metric: 'api_calls', quantity: '1000000000000000', timestamp: minutesAgo(1) },
      { id: 'nozone', metric: 'api_calls', quantity: '1', timestamp: '2026-11-25T10:00:00' },
      { id: 'nested', metric: 'api_calls', quantity: '1', timestamp: minutesAgo(1), properties: { a: { b: 1 } } },
    ]);
    assert.equal(bad.status, 400, bad.text);
    assert.deepEqual(
      bad.json.error.details.map((d: { field: string }) => d.field),
      [
        'body.events.0.quantity',
        'body.events.1.quantity',
        'body.events.2.quantity',
        'body.events.3.quantity',
        'body.events.4.timestamp',
        'body.events.5.properties.a',
      ],
    );
    assert.equal(await rowCount(a.id, id), 3);
  });

  it('checks the envelope: 1 to 10,000 events, no other fields', async () => {
    const id = await activeCustomer();
    const empty = await ingest(id, []);
    assert.equal(empty.status, 400);
    assert.equal(empty.json.error.details[0].field, 'body.events');
    const tooMany = await ingest(id, Array.from({ length: 10_001 }, () => ({})));
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.json.error.details[0].field, 'body.events');
    const extra = await stack.call('POST', `/v1/customers/${id}/usage`, { key: a.key, body: { events: calls('x', 1), dryRun: true } });
    assert.equal(extra.status, 400);
    assert.equal(extra.json.error.details[0].field, 'body.dryRun');
    assert.equal(await rowCount(a.id, id), 0);
  });

  it('answers 404 for an unknown customer, and for another brand’s customer, writing nothing', async () => {
    const unknown = await ingest(uniqueId('ghost'), calls('g', 1));
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.error.code, 'NOT_FOUND');

    const id = await activeCustomer(a);
    const otherBrand = await ingest(id, calls('b', 3), b.key);
    assert.equal(otherBrand.status, 404, otherBrand.text);
    assert.equal(await stack.db('usage_events').where({ customer_id: id }).count({ n: '*' }).then((r) => Number(r[0]!.n)), 0);
  });

  it('refuses usage from a customer who is not active (a lead) with 409 CUSTOMER_INACTIVE', async () => {
    const lead = await stack.call('POST', '/v1/leads', { key: a.key, body: { email: 'lead@example.com', source: 'google' } });
    assert.equal(lead.status, 201, lead.text);
    const id: string = lead.json.id;
    await eventually(async () => (await stack.db('customers').where({ brand_id: a.id, id }).first())?.stage === 'lead');
    const res = await ingest(id, calls('l', 2));
    assert.equal(res.status, 409, res.text);
    assert.equal(res.json.error.code, 'CUSTOMER_INACTIVE');
    assert.equal(await rowCount(a.id, id), 0);
  });

  it('signals the customer workflow when usage crosses 80 % and then 100 % of the included allowance', async () => {
    const id = await activeCustomer();
    const storage = (eventId: string, quantity: string) => ({ id: eventId, metric: 'storage_gb', quantity, timestamp: minutesAgo(1) });
    const first = await ingest(id, [storage('s1', '50'), storage('s2', '35')]);
    assert.equal(first.status, 202, first.text);
    assert.deepEqual(first.json.thresholds, [{ metric: 'storage_gb', threshold: 80, quantity: '85', included: '100', notified: true }]);

    const repeat = await ingest(id, [storage('s2', '35')]);
    assert.deepEqual(repeat.json.thresholds, [], 'a duplicate adds nothing, so crosses nothing');

    const second = await ingest(id, [storage('s3', '20')]);
    assert.deepEqual(second.json.thresholds, [{ metric: 'storage_gb', threshold: 100, quantity: '105', included: '100', notified: true }]);

    // A signal that arrives while a workflow task is running is buffered by the server and enters
    // the history when that task completes, so read the history until both are there.
    const signalsInHistory = async () => {
      const history = await stack.env.client.workflow.getHandle(customerWorkflowId(a.id, id)).fetchHistory();
      return (history.events ?? [])
        .map((e) => e.workflowExecutionSignaledEventAttributes)
        .filter((s) => s?.signalName === 'usageThresholdCrossed')
        .map((s) => defaultPayloadConverter.fromPayload<UsageThresholdCrossed>(s!.input!.payloads![0]!));
    };
    const signals = await eventually(async () => {
      const found = await signalsInHistory();
      return found.length >= 2 && found;
    });
    assert.deepEqual(
      signals.map(({ metric, threshold, quantity, included }) => ({ metric, threshold, quantity, included })),
      [
        { metric: 'storage_gb', threshold: 80, quantity: '85', included: '100' },
        { metric: 'storage_gb', threshold: 100, quantity: '105', included: '100' },
      ],
    );
    assert.ok(signals.every((s) => !Number.isNaN(Date.parse(s.at))));
  });

  it('reports each crossing once when concurrent batches of one customer race past a threshold', async () => {
    const id = await activeCustomer();
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => ingest(id, [{ id: `c${i}`, metric: 'storage_gb', quantity: '10', timestamp: minutesAgo(1) }])),
    );
    assert.ok(results.every((r) => r.status === 202));
    const crossed = results.flatMap((r) => r.json.thresholds.map((t: { threshold: number }) => t.threshold)).sort((x: number, y: number) => x - y);
    assert.deepEqual(crossed, [80, 100]);
  });

  it('takes a 10,000-event batch in one request (throughput printed, not asserted)', async function () {
    const id = await activeCustomer();
    const batch = Array.from({ length: 10_000 }, (_, i) => ({ id: `t${i}`, metric: 'api_calls', quantity: '0.5', timestamp: minutesAgo(2) }));
    const bytes = Buffer.byteLength(JSON.stringify({ events: batch }));
    const started = process.hrtime.bigint();
    const res = await ingest(id, batch);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.accepted, 10_000);
    assert.equal(await rowCount(a.id, id), 10_000);
    const again = process.hrtime.bigint();
    const dup = await ingest(id, batch);
    const dupMs = Number(process.hrtime.bigint() - again) / 1e6;
    assert.equal(dup.json.duplicates, 10_000);
    process.stdout.write(
      `      throughput: 10,000 new events (${(bytes / 1024).toFixed(0)} KiB) in ${ms.toFixed(0)} ms = ${Math.round(10_000 / (ms / 1000))} events/s; ` +
        `re-sent as duplicates in ${dupMs.toFixed(0)} ms = ${Math.round(10_000 / (dupMs / 1000))} events/s\n`,
    );
  });
});
