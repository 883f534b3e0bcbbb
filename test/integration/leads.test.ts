import assert from 'node:assert/strict';
import { ServiceError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { createApp } from '../../api/app';
import { listen } from '../../api/server';
import {
  acquisitionFunnel,
  captureLead,
  LeadConflictError,
  markLeadConverted,
  markLeadExpired,
  recordAttributedRevenue,
} from '../../data/leads';
import { CUSTOMER_ID, customerWorkflowId } from '../../domain/ids';
import { createLogger } from '../../infra/logger';
import type { CustomerWorkflowInput } from '../../workflows/shared';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Lead capture and the acquisition funnel, as a client app uses them: real HTTP, the Temporal
 * dev server with the real worker, PostgreSQL. The customer workflow's own handling of leads
 * (nurture, expiry, conversion) has its own workflow tests; here only what the API guarantees.
 */
describe('leads and the acquisition funnel (integration)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    [a, b] = await Promise.all([stack.brand(), stack.brand({ currency: 'EUR' })]);
  });

  after(async () => {
    await stack?.stop();
  });

  const capture = (key: string, body: unknown, headers: Record<string, string> = {}) => stack.call('POST', '/v1/leads', { key, body, headers });
  const leadRows = (brandId: string, where: Record<string, unknown> = {}) => stack.db('leads').where({ brand_id: brandId, ...where });

  async function startInput(brandId: string, id: string): Promise<CustomerWorkflowInput> {
    const history = await stack.env.client.workflow.getHandle(customerWorkflowId(brandId, id)).fetchHistory();
    const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    assert.ok(payload, 'the workflow was started with an input');
    return defaultPayloadConverter.fromPayload<CustomerWorkflowInput>(payload);
  }

  async function visibleWorkflows(brandId: string): Promise<number> {
    return (await stack.env.client.workflow.count(`BrandId = "${brandId}"`)).count;
  }

  describe('POST /v1/leads', () => {
    it('captures a lead (201) and starts its customer workflow in stage lead', async () => {
      const externalId = uniqueId('crm');
      const res = await capture(a.key, {
        externalId,
        email: 'ada@example.com',
        name: 'Ada Lovelace',
        source: 'google',
        campaign: 'spring-2026',
        attributes: { company_size: 40, trial: true, plan_hint: 'pro' },
      });
      assert.equal(res.status, 201, res.text);
      const lead = res.json;
      assert.match(lead.id, /^lead_[0-9a-f]{20}$/);
      assert.match(lead.id, CUSTOMER_ID, 'a lead id is a valid customer id');
      assert.equal(res.headers.get('location'), `/v1/customers/${lead.id}`);
      assert.deepEqual(
        { ...lead, id: undefined, createdAt: undefined },
        {
          id: undefined,
          externalId,
          email: 'ada@example.com',
          name: 'Ada Lovelace',
          source: 'google',
          campaign: 'spring-2026',
          attributes: { company_size: 40, trial: true, plan_hint: 'pro' },
          status: 'open',
          createdAt: undefined,
          convertedAt: null,
          expiredAt: null,
        },
      );
      assert.ok(!Number.isNaN(Date.parse(lead.createdAt)));

      const handle = stack.env.client.workflow.getHandle(customerWorkflowId(a.id, lead.id));
      const description = await handle.describe();
      assert.equal(description.taskQueue, stack.taskQueue);
      assert.deepEqual(description.searchAttributes.CustomerId, [lead.id]);
      assert.deepEqual(description.searchAttributes.BrandId, [a.id]);
      assert.deepEqual(description.searchAttributes.CustomerStage, ['lead']);
      assert.deepEqual(await startInput(a.id, lead.id), {
        brandId: a.id,
        customerId: lead.id,
        email: 'ada@example.com',
        name: 'Ada Lovelace',
        lead: { source: 'google', campaign: 'spring-2026', attributes: { company_size: 40, trial: true, plan_hint: 'pro' } },
      });

      const read = await stack.call('GET', `/v1/leads/${lead.id}`, { key: a.key });
      assert.equal(read.status, 200, read.text);
      assert.deepEqual(read.json, lead);
      assert.equal((await leadRows(a.id, { id: lead.id })).length, 1);
    });

    it('passes an empty campaign and no name to the workflow when the lead has none', async () => {
      const res = await capture(a.key, { email: 'min@example.com', source: 'newsletter' });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.json.campaign, null);
      assert.equal(res.json.name, null);
      assert.deepEqual(res.json.attributes, {});
      const input = await startInput(a.id, res.json.id);
      assert.equal(input.name, undefined);
      assert.deepEqual(input.lead, { source: 'newsletter', campaign: '', attributes: {} });
    });

    it('returns the same lead (200) for a repeated externalId: one row, one workflow run', async () => {
      const body = { externalId: uniqueId('crm'), email: 'grace@example.com', source: 'google', campaign: 'brand' };
      const first = await capture(a.key, body);
      assert.equal(first.status, 201, first.text);
      const { runId } = await stack.env.client.workflow.getHandle(customerWorkflowId(a.id, first.json.id)).describe();

      const again = await capture(a.key, body);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, first.json);
      assert.equal(again.headers.get('location'), `/v1/customers/${first.json.id}`);
      // A retry may leave out optional fields and still be the same lead.
      const shorter = await capture(a.key, { externalId: body.externalId, email: body.email, source: body.source, campaign: body.campaign });
      assert.equal(shorter.status, 200, shorter.text);
      assert.equal(shorter.json.id, first.json.id);

      assert.equal((await leadRows(a.id, { external_id: body.externalId })).length, 1);
      const after = await stack.env.client.workflow.getHandle(customerWorkflowId(a.id, first.json.id)).describe();
      assert.equal(after.runId, runId, 'the same run, not a second workflow');
    });

    it('returns the same lead (200) for a repeated Idempotency-Key, and 409 if the details differ', async () => {
      const brand = await stack.brand();
      const headers = { 'Idempotency-Key': uniqueId('idem') };
      const body = { email: 'key@example.com', source: 'partner', attributes: { seats: 3 } };
      const first = await capture(brand.key, body, headers);
      assert.equal(first.status, 201, first.text);
      const again = await capture(brand.key, body, headers);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, first.json);

      const changed = await capture(brand.key, { ...body, email: 'other@example.com', attributes: { seats: 4 } }, headers);
      assert.equal(changed.status, 409, changed.text);
      assert.equal(changed.json.error.code, 'LEAD_EXISTS');
      assert.deepEqual(changed.json.error.details.map((d: { field: string }) => d.field), ['body.email', 'body.attributes']);

      assert.equal((await leadRows(brand.id)).length, 1);
      await eventually(async () => (await visibleWorkflows(brand.id)) >= 1);
      assert.equal(await visibleWorkflows(brand.id), 1);
    });

    it('captures a fresh lead every time when the request carries no key', async () => {
      const body = { email: 'anon@example.com', source: 'webinar' };
      const first = await capture(a.key, body);
      const second = await capture(a.key, body);
      assert.equal(first.status, 201);
      assert.equal(second.status, 201);
      assert.notEqual(first.json.id, second.json.id);
      assert.ok(await stack.workflowExists(customerWorkflowId(a.id, second.json.id)));
    });

    it('answers 409 naming body.email for a known externalId with another email, changing nothing', async () => {
      const externalId = uniqueId('crm');
      const first = await capture(a.key, { externalId, email: 'linus@example.com', source: 'google' });
      assert.equal(first.status, 201, first.text);
      const conflict = await capture(a.key, { externalId, email: 'mallory@example.com', source: 'google' });
      assert.equal(conflict.status, 409, conflict.text);
      assert.equal(conflict.json.error.code, 'LEAD_EXISTS');
      assert.deepEqual(conflict.json.error.details, [{ field: 'body.email', message: 'differs from the existing lead' }]);
      const rows = await leadRows(a.id, { external_id: externalId });
      assert.equal(rows.length, 1);
      assert.equal(rows[0].email, 'linus@example.com');
      assert.equal((await stack.call('GET', `/v1/leads/${first.json.id}`, { key: a.key })).json.email, 'linus@example.com');
      assert.equal((await startInput(a.id, first.json.id)).email, 'linus@example.com');
    });

    it('answers 409 naming the header when an Idempotency-Key is reused for another externalId', async () => {
      const headers = { 'Idempotency-Key': uniqueId('idem') };
      assert.equal((await capture(a.key, { externalId: uniqueId('crm'), email: 'x@example.com', source: 'google' }, headers)).status, 201);
      const otherId = uniqueId('crm');
      const reused = await capture(a.key, { externalId: otherId, email: 'y@example.com', source: 'google' }, headers);
      assert.equal(reused.status, 409, reused.text);
      assert.equal(reused.json.error.details[0].field, 'header.idempotency-key');
      assert.equal((await leadRows(a.id, { external_id: otherId })).length, 0);
    });

    it('answers bad input with 400 naming the field, and writes no lead and starts no workflow', async () => {
      const brand = await stack.brand();
      const good = { email: 'ok@example.com', source: 'google' };
      const cases: Array<{ body: unknown; headers?: Record<string, string>; field: string }> = [
        { body: { ...good, email: 'not-an-email' }, field: 'body.email' },
        { body: { ...good, source: 'google ads' }, field: 'body.source' },
        { body: { ...good, source: 'Google' }, field: 'body.source' },
        { body: { email: 'ok@example.com' }, field: 'body.source' },
        { body: { ...good, campaign: 'Spring Sale' }, field: 'body.campaign' },
        { body: { ...good, attributes: { nested: { a: 1 } } }, field: 'body.attributes.nested' },
        { body: { ...good, attributes: { list: [1, 2] } }, field: 'body.attributes.list' },
        { body: { ...good, attributes: { 'Bad-Key': 1 } }, field: 'body.attributes.Bad-Key' },
        { body: { ...good, attributes: JSON.parse('{"__proto__": "x"}') }, field: 'body.attributes.__proto__' },
        { body: { ...good, attributes: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, i])) }, field: 'body.attributes' },
        { body: { ...good, attributes: 'vip' }, field: 'body.attributes' },
        { body: { ...good, foo: 1 }, field: 'body.foo' },
        { body: { ...good, externalId: 'has space' }, field: 'body.externalId' },
        { body: { ...good, name: '' }, field: 'body.name' },
        { body: good, headers: { 'Idempotency-Key': 'k'.repeat(256) }, field: 'header.idempotency-key' },
      ];
      for (const c of cases) {
        const res = await capture(brand.key, c.body, c.headers);
        assert.equal(res.status, 400, `${JSON.stringify(c.body)}: ${res.text}`);
        assert.equal(res.json.error.code, 'VALIDATION_FAILED');
        const fields = res.json.error.details.map((d: { field: string }) => d.field);
        assert.ok(fields.includes(c.field), `${c.field} named in ${JSON.stringify(fields)}`);
        assert.match(res.json.error.message, new RegExp(c.field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      }
      const malformed = await stack.call('POST', '/v1/leads', { key: brand.key, raw: '{"email":' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.json.error.code, 'INVALID_JSON');
      assert.equal((await stack.call('POST', '/v1/leads', { key: null, body: good })).status, 401);

      assert.equal((await leadRows(brand.id)).length, 0, 'no lead row was written');
      // One good capture afterwards: once it is visible, it is the brand's only workflow.
      assert.equal((await capture(brand.key, good)).status, 201);
      await eventually(async () => (await visibleWorkflows(brand.id)) >= 1);
      assert.equal(await visibleWorkflows(brand.id), 1, 'no workflow was started for a bad request');
    });

    it("never shows one brand's lead to another; each brand has its own externalIds", async () => {
      const externalId = uniqueId('crm');
      const mine = await capture(a.key, { externalId, email: 'a@example.com', source: 'google' });
      assert.equal(mine.status, 201);
      const peek = await stack.call('GET', `/v1/leads/${mine.json.id}`, { key: b.key });
      assert.equal(peek.status, 404);
      assert.equal(peek.json.error.code, 'NOT_FOUND');

      const theirs = await capture(b.key, { externalId, email: 'b@example.com', source: 'google' });
      assert.equal(theirs.status, 201, "the same externalId is a new lead in another brand");
      assert.notEqual(theirs.json.id, mine.json.id);
      assert.equal(theirs.json.email, 'b@example.com');
      const { searchAttributes } = await stack.env.client.workflow.getHandle(customerWorkflowId(b.id, theirs.json.id)).describe();
      assert.deepEqual(searchAttributes.BrandId, [b.id]);
      assert.equal((await stack.call('GET', `/v1/leads/${mine.json.id}`, { key: a.key })).json.email, 'a@example.com');
      assert.equal((await stack.call('GET', `/v1/leads/${theirs.json.id}`, { key: a.key })).status, 404);
      assert.equal((await stack.call('GET', '/v1/leads/lead_0000000000000000000f', { key: a.key })).status, 404);
      assert.equal((await stack.call('GET', '/v1/leads/has%20space', { key: a.key })).json.error.details[0].field, 'params.id');
    });

    it('answers 503 when Temporal is unreachable, and keeps no keyless lead behind', async () => {
      const down = {
        workflow: {
          start: async () => {
            throw new ServiceError('Failed to start Workflow', { cause: new Error('14 UNAVAILABLE: connection refused') });
          },
        },
      } as unknown as Client;
      const app = createApp({ temporal: down, db: stack.db, logger: createLogger('silent'), config: { taskQueue: stack.taskQueue }, defaultMetrics: false });
      const server = await listen(app, 0, '127.0.0.1');
      try {
        const brand = await stack.brand();
        const post = (body: unknown, headers: Record<string, string> = {}) =>
          fetch(`${server.url}/v1/leads`, {
            method: 'POST',
            headers: { authorization: `Bearer ${brand.key}`, 'content-type': 'application/json', ...headers },
            body: JSON.stringify(body),
          });
        const keyless = await post({ email: 'down@example.com', source: 'google' });
        assert.equal(keyless.status, 503);
        assert.equal(((await keyless.json()) as { error: { code: string } }).error.code, 'UNAVAILABLE');
        assert.equal((await leadRows(brand.id)).length, 0, 'a keyless lead that never started is not left in the funnel');

        // With a key the lead stays, and the client's retry (here, on the healthy API) starts it.
        const externalId = uniqueId('crm');
        assert.equal((await post({ externalId, email: 'down@example.com', source: 'google' })).status, 503);
        const [row] = await leadRows(brand.id, { external_id: externalId });
        assert.ok(row);
        assert.equal(await stack.workflowExists(customerWorkflowId(brand.id, row.id)), false);
        const retry = await capture(brand.key, { externalId, email: 'down@example.com', source: 'google' });
        assert.equal(retry.status, 200, retry.text);
        assert.equal(retry.json.id, row.id);
        assert.ok(await stack.workflowExists(customerWorkflowId(brand.id, row.id)));
      } finally {
        await server.close();
      }
    });

    it('documents the lead and analytics endpoints, with the Idempotency-Key header, in OpenAPI', async () => {
      const doc = (await stack.call('GET', '/v1/openapi.json', { key: null })).json;
      const post = doc.paths['/v1/leads'].post;
      assert.ok(post.requestBody);
      assert.ok(post.parameters.some((p: { in: string; name: string }) => p.in === 'header' && p.name === 'idempotency-key'));
      assert.ok(post.responses['201'] && post.responses['200'] && post.responses['409'] && post.responses['400']);
      assert.ok(doc.paths['/v1/leads/{id}'].get);
      const funnel = doc.paths['/v1/analytics/acquisition'].get;
      assert.deepEqual(funnel.parameters.map((p: { name: string }) => p.name).sort(), ['from', 'to']);
    });
  });

  describe('GET /v1/analytics/acquisition', () => {
    it('reports leads, outcomes, rate and attributed revenue by source and campaign, per brand', async () => {
      const brand = await stack.brand();
      const lead = async (source: string, campaign?: string) => {
        const res = await capture(brand.key, { email: `${uniqueId('p')}@example.com`, source, ...(campaign ? { campaign } : {}) });
        assert.equal(res.status, 201, res.text);
        return res.json.id as string;
      };
      const now = new Date();
      const [g1, g2, g3] = [await lead('google', 'spring'), await lead('google', 'spring'), await lead('google', 'spring')];
      await lead('google', 'spring');
      await lead('google');
      const [n1, n2, n3] = [await lead('newsletter', 'nov'), await lead('newsletter', 'nov'), await lead('newsletter', 'nov')];
      const p1 = await lead('partner', 'q4');

      for (const id of [g1, g2, n1, n2]) assert.equal(await markLeadConverted(stack.db, brand.id, id, now), true);
      for (const id of [g3, n3, p1]) assert.equal(await markLeadExpired(stack.db, brand.id, id, now), true);
      // Outcomes are final: a converted lead does not expire, an expired one does not convert.
      assert.equal(await markLeadExpired(stack.db, brand.id, g1, now), false);
      assert.equal(await markLeadConverted(stack.db, brand.id, n3, now), false);

      const revenue = (customerId: string, sourceEvent: string, amountMinor: number, currency = 'USD') =>
        recordAttributedRevenue(stack.db, { brandId: brand.id, customerId, sourceEvent, amountMinor, currency });
      assert.deepEqual(await revenue(g1, 'payment:g1-1', 4900), { recorded: true });
      assert.deepEqual(await revenue(g1, 'payment:g1-2', 4900), { recorded: true });
      assert.deepEqual(await revenue(g1, 'payment:g1-1', 4900), { recorded: false }, 'a replayed event counts once');
      await revenue(g2, 'payment:g2-1', 1000, 'EUR');
      await revenue(n1, 'payment:n1-1', 1999);
      await revenue(n2, 'payment:n2-1', 2999);
      await revenue(n2, 'refund:n2-1', -999);
      await revenue('cus_direct', 'payment:direct-1', 100_000); // signed up without a lead

      const res = await stack.call('GET', '/v1/analytics/acquisition', { key: brand.key });
      assert.equal(res.status, 200, res.text);
      const usd = (minor: number) => ({ amount: (minor / 100).toFixed(2), currency: 'USD', minor });
      assert.deepEqual(res.json, {
        from: null,
        to: null,
        bySource: [
          { source: 'google', campaign: null, leads: 1, conversions: 0, expired: 0, open: 1, conversionRate: '0.0000', revenue: [] },
          {
            source: 'google',
            campaign: 'spring',
            leads: 4,
            conversions: 2,
            expired: 1,
            open: 1,
            conversionRate: '0.5000',
            revenue: [{ amount: '10.00', currency: 'EUR', minor: 1000 }, usd(9800)],
          },
          { source: 'newsletter', campaign: 'nov', leads: 3, conversions: 2, expired: 1, open: 0, conversionRate: '0.6667', revenue: [usd(3999)] },
          { source: 'partner', campaign: 'q4', leads: 1, conversions: 0, expired: 1, open: 0, conversionRate: '0.0000', revenue: [] },
        ],
        totals: {
          leads: 9,
          conversions: 4,
          expired: 3,
          open: 2,
          conversionRate: '0.4444',
          revenue: [{ amount: '10.00', currency: 'EUR', minor: 1000 }, usd(13799)],
        },
      });

      // Another brand's key sees only its own funnel.
      const other = await stack.brand();
      const theirs = await capture(other.key, { email: 'o@example.com', source: 'google', campaign: 'spring' });
      await markLeadConverted(stack.db, other.id, theirs.json.id, now);
      await recordAttributedRevenue(stack.db, { brandId: other.id, customerId: theirs.json.id, sourceEvent: 'payment:g1-1', amountMinor: 500, currency: 'USD' });
      // Revenue filed under the other brand for this brand's lead id is not this brand's.
      await recordAttributedRevenue(stack.db, { brandId: other.id, customerId: g1, sourceEvent: 'payment:cross', amountMinor: 777, currency: 'USD' });
      const otherFunnel = await stack.call('GET', '/v1/analytics/acquisition', { key: other.key });
      assert.deepEqual(otherFunnel.json.bySource, [
        { source: 'google', campaign: 'spring', leads: 1, conversions: 1, expired: 0, open: 0, conversionRate: '1.0000', revenue: [usd(500)] },
      ]);
      const again = await stack.call('GET', '/v1/analytics/acquisition', { key: brand.key });
      assert.deepEqual(again.json.totals, res.json.totals, "the other brand's activity changes nothing here");
    });

    it('counts leads captured between from and to, both whole UTC days', async () => {
      const brand = await stack.brand();
      const at = async (createdAt: string, source: string) => {
        const { lead } = await captureLead(stack.db, brand.id, { email: 'w@example.com', source });
        await stack.db('leads').where({ brand_id: brand.id, id: lead.id }).update({ created_at: createdAt });
      };
      await at('2026-10-31T23:59:59.999Z', 'before');
      await at('2026-11-01T00:00:00.000Z', 'first-day');
      await at('2026-11-30T23:59:59.999Z', 'last-day');
      await at('2026-12-01T00:00:00.000Z', 'after');
      const sources = async (q: string) => {
        const res = await stack.call('GET', `/v1/analytics/acquisition${q}`, { key: brand.key });
        assert.equal(res.status, 200, res.text);
        return res.json.bySource.map((r: { source: string }) => r.source);
      };
      assert.deepEqual(await sources('?from=2026-11-01&to=2026-11-30'), ['first-day', 'last-day']);
      assert.deepEqual(await sources('?from=2026-11-30'), ['after', 'last-day']);
      assert.deepEqual(await sources('?to=2026-10-31'), ['before']);
      assert.deepEqual(await sources('?from=2026-11-15&to=2026-11-15'), []);
      const empty = await stack.call('GET', '/v1/analytics/acquisition?from=2027-01-01', { key: brand.key });
      assert.deepEqual(empty.json.totals, { leads: 0, conversions: 0, expired: 0, open: 0, conversionRate: '0.0000', revenue: [] });
    });

    it('answers a bad range with 400 naming the field', async () => {
      const bad = async (q: string, field: string) => {
        const res = await stack.call('GET', `/v1/analytics/acquisition${q}`, { key: a.key });
        assert.equal(res.status, 400, `${q}: ${res.text}`);
        assert.ok(res.json.error.details.some((d: { field: string }) => d.field === field), `${q}: ${res.text}`);
      };
      await bad('?from=2026-12-01&to=2026-11-01', 'query.from');
      await bad('?to=2026-13-01', 'query.to');
      await bad('?from=yesterday', 'query.from');
      await bad('?from=2026-11-01&from=2026-11-02', 'query.from');
      await bad('?since=2026-11-01', 'query.since');
      assert.equal((await stack.call('GET', '/v1/analytics/acquisition', { key: null })).status, 401);
    });
  });

  describe('data/leads on PostgreSQL', () => {
    it('gives racing captures with the same externalId one lead', async () => {
      const brand = await stack.brand();
      const externalId = uniqueId('crm');
      const results = await Promise.all(
        Array.from({ length: 8 }, () => captureLead(stack.db, brand.id, { externalId, email: 'race@example.com', source: 'google' })),
      );
      assert.equal(new Set(results.map((r) => r.lead.id)).size, 1);
      assert.equal(results.filter((r) => r.created).length, 1);
      assert.equal((await leadRows(brand.id)).length, 1);
    });

    it('names every differing field of a conflicting repeat', async () => {
      const brand = await stack.brand();
      const externalId = uniqueId('crm');
      await captureLead(stack.db, brand.id, { externalId, email: 'c@example.com', name: 'C', source: 'google', campaign: 'x' });
      await assert.rejects(
        captureLead(stack.db, brand.id, { externalId, email: 'c@example.com', name: 'D', source: 'bing' }),
        (e: unknown) => e instanceof LeadConflictError && e.fields.join() === 'name,source,campaign',
      );
    });

    it('keeps a lead outcome once set, with its first timestamp', async () => {
      const brand = await stack.brand();
      const { lead } = await captureLead(stack.db, brand.id, { email: 'o@example.com', source: 'google' });
      const first = new Date('2026-11-20T10:00:00Z');
      assert.equal(await markLeadConverted(stack.db, brand.id, lead.id, first), true);
      assert.equal(await markLeadConverted(stack.db, brand.id, lead.id, new Date('2026-11-21T10:00:00Z')), false);
      assert.equal(await markLeadExpired(stack.db, brand.id, lead.id, new Date('2026-11-22T10:00:00Z')), false);
      assert.equal(await markLeadConverted(stack.db, 'no-such-brand', lead.id, first), false);
      const [row] = await leadRows(brand.id, { id: lead.id });
      assert.equal(row.status, 'converted');
      assert.equal(row.converted_at.toISOString(), first.toISOString());
      assert.equal(row.expired_at, null);
    });

    it('returns an empty funnel for a brand without leads, even with revenue', async () => {
      const brand = await stack.brand();
      await recordAttributedRevenue(stack.db, { brandId: brand.id, customerId: 'cus_1', sourceEvent: 'payment:1', amountMinor: 100n, currency: 'USD' });
      assert.deepEqual(await acquisitionFunnel(stack.db, brand.id), []);
    });

    it('sums large amounts exactly and keeps leads without revenue at zero', async () => {
      const brand = await stack.brand();
      const { lead } = await captureLead(stack.db, brand.id, { email: 'big@example.com', source: 'enterprise' });
      await captureLead(stack.db, brand.id, { email: 'none@example.com', source: 'enterprise' });
      const big = 4_503_599_627_370_497n; // 2^52 + 1: a float would lose the last unit in the sum
      await recordAttributedRevenue(stack.db, { brandId: brand.id, customerId: lead.id, sourceEvent: 'p:1', amountMinor: big, currency: 'JPY' });
      await recordAttributedRevenue(stack.db, { brandId: brand.id, customerId: lead.id, sourceEvent: 'p:2', amountMinor: big, currency: 'JPY' });
      const [row] = await acquisitionFunnel(stack.db, brand.id);
      assert.deepEqual(row, {
        source: 'enterprise',
        campaign: null,
        leads: 2,
        conversions: 0,
        expired: 0,
        open: 2,
        conversionRate: '0.0000',
        revenue: [{ currency: 'JPY', minor: 2n * big }],
      });
    });

    it('refuses revenue that is not integer minor units in a currency', async () => {
      const r = { brandId: a.id, customerId: 'cus_1', sourceEvent: uniqueId('p'), currency: 'USD' };
      await assert.rejects(recordAttributedRevenue(stack.db, { ...r, amountMinor: 12.5 }), RangeError);
      await assert.rejects(recordAttributedRevenue(stack.db, { ...r, amountMinor: 1, currency: 'usd' }), RangeError);
    });
  });
});
