import assert from 'node:assert/strict';
import { DEFAULT_POLICIES, POLICY_KINDS } from '../../domain/policies';
import { seedDemoBrand } from '../../scripts/seed';
import { CallResult, startStack, Stack } from '../support/stack';

/**
 * The catalog and policies as an operator manages them: over HTTP with a brand's API key,
 * against real PostgreSQL. Bad input is a 400 naming the field and leaves no trace.
 */
describe('catalog and policies over HTTP (integration)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let brand: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brand = await stack.brand({ mode: 'sandbox' });
  });

  after(async () => {
    await stack?.stop();
  });

  const plan = (code: string, extra: Record<string, unknown> = {}) => ({ code, name: `Plan ${code}`, recurringFee: '29.00', billingPeriod: 'P1M', ...extra });
  const fields = (res: CallResult): string[] => (res.json?.error?.details ?? []).map((d: { field: string }) => d.field).sort();
  const planRows = (brandId: string, code: string) => stack.db('plans').where({ brand_id: brandId, code }).orderBy('version');
  const policyRow = (brandId: string, kind: string) => stack.db('policies').where({ brand_id: brandId, kind }).first();

  function assertBadRequest(res: CallResult, expectedFields: string[]): void {
    assert.equal(res.status, 400, res.text);
    assert.equal(res.json.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(fields(res), expectedFields, res.text);
    for (const f of expectedFields) assert.match(res.json.error.message, new RegExp(f.replace(/\./g, '\\.')));
  }

  describe('plans', () => {
    it('creates version 1, answers the same plan again with that version, and a change with version 2', async () => {
      const body = plan('growth', {
        costToServe: '4.00',
        entitlements: { features: ['api', 'sso'], quotas: { api_calls: 50_000, seats: 5 } },
        usage: [
          { metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 50_000 },
          { metric: 'storage_gb', model: 'graduated', tiers: [{ upTo: 100, unitPrice: '0.10' }, { upTo: null, unitPrice: '0.05' }] },
        ],
      });
      const created = await stack.call('POST', '/v1/plans', { key: brand.key, body });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.headers.get('location'), '/v1/plans/growth');
      assert.deepEqual({ ...created.json, createdAt: undefined }, {
        code: 'growth',
        version: 1,
        name: 'Plan growth',
        recurringFee: { amount: '29.00', currency: 'USD', minor: 2900 },
        costToServe: { amount: '4.00', currency: 'USD', minor: 400 },
        billingPeriod: 'P1M',
        entitlements: { features: ['api', 'sso'], quotas: { api_calls: 50_000, seats: 5 } },
        usage: [
          { metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 50_000 },
          { metric: 'storage_gb', model: 'graduated', tiers: [{ upTo: 100, unitPrice: '0.10' }, { upTo: null, unitPrice: '0.05' }], includedQuantity: 0 },
        ],
        createdAt: undefined,
      });
      assert.ok(!Number.isNaN(Date.parse(created.json.createdAt)));

      // Keys in another order are the same plan: a client retrying is never a new version.
      const reordered = { ...body, entitlements: { quotas: { seats: 5, api_calls: 50_000 }, features: ['api', 'sso'] } };
      const again = await stack.call('POST', '/v1/plans', { key: brand.key, body: reordered });
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, created.json);
      assert.equal((await planRows(brand.id, 'growth')).length, 1);

      const changed = await stack.call('POST', '/v1/plans', { key: brand.key, body: { ...body, recurringFee: '39.00' } });
      assert.equal(changed.status, 201, changed.text);
      assert.equal(changed.json.version, 2);
      assert.deepEqual(changed.json.recurringFee, { amount: '39.00', currency: 'USD', minor: 3900 });

      const list = await stack.call('GET', '/v1/plans', { key: brand.key });
      assert.equal(list.status, 200);
      const growth = list.json.data.filter((p: { code: string }) => p.code === 'growth');
      assert.deepEqual(growth, [changed.json]);

      const versions = await stack.call('GET', '/v1/plans/growth', { key: brand.key });
      assert.equal(versions.status, 200);
      assert.deepEqual(versions.json.data, [changed.json, created.json]);
      const rows = await planRows(brand.id, 'growth');
      assert.deepEqual(rows.map((r) => [r.version, Number(r.recurring_fee_minor)]), [[1, 2900], [2, 3900]]);
    });

    it('gives concurrent changes of one plan consecutive versions', async () => {
      const fees = ['10.00', '11.00', '12.00', '13.00', '14.00'];
      const results = await Promise.all(fees.map((fee) => stack.call('POST', '/v1/plans', { key: brand.key, body: plan('race', { recurringFee: fee }) })));
      for (const r of results) assert.equal(r.status, 201, r.text);
      assert.deepEqual(results.map((r) => r.json.version).sort(), [1, 2, 3, 4, 5]);
      assert.equal((await planRows(brand.id, 'race')).length, 5);
    });

    const badPlans: Array<[string, Record<string, unknown>, string[]]> = [
      ['a negative fee', plan('bad', { recurringFee: '-1.00' }), ['body.recurringFee']],
      ['more decimals than USD has', plan('bad', { recurringFee: '9.999' }), ['body.recurringFee']],
      ['a sub-cent cost to serve', plan('bad', { costToServe: '0.001' }), ['body.costToServe']],
      ['a fee as a number', plan('bad', { recurringFee: 29 }), ['body.recurringFee']],
      ['a zero-length period', plan('bad', { billingPeriod: 'P0D' }), ['body.billingPeriod']],
      ['a period shorter than a minute', plan('bad', { billingPeriod: 'PT30S' }), ['body.billingPeriod']],
      ['a period that is no duration', plan('bad', { billingPeriod: 'monthly' }), ['body.billingPeriod']],
      ['an unknown field', plan('bad', { colour: 'red' }), ['body.colour']],
      ['a bad plan code', plan('Bad Plan'), ['body.code']],
      ['a missing name', { code: 'bad', recurringFee: '1.00', billingPeriod: 'P1M' }, ['body.name']],
      [
        'tiers that do not ascend',
        plan('bad', { usage: [{ metric: 'calls', model: 'graduated', tiers: [{ upTo: 100, unitPrice: '1' }, { upTo: 50, unitPrice: '1' }, { upTo: null, unitPrice: '1' }] }] }),
        ['body.usage.0.tiers.1.upTo'],
      ],
      [
        'a last tier with a bound',
        plan('bad', { usage: [{ metric: 'calls', model: 'volume', tiers: [{ upTo: 100, unitPrice: '1' }] }] }),
        ['body.usage.0.tiers.0.upTo'],
      ],
      ['a per-unit price missing', plan('bad', { usage: [{ metric: 'calls', model: 'per_unit' }] }), ['body.usage.0.unitPrice']],
      ['a negative quota', plan('bad', { entitlements: { features: [], quotas: { calls: -5 } } }), ['body.entitlements.quotas.calls']],
    ];
    for (const [what, body, expected] of badPlans) {
      it(`rejects ${what} with 400 naming ${expected.join(', ')}, writing nothing`, async () => {
        const res = await stack.call('POST', '/v1/plans', { key: brand.key, body });
        assertBadRequest(res, expected);
        assert.equal((await stack.db('plans').where({ brand_id: brand.id }).whereIn('code', ['bad', 'Bad Plan'])).length, 0);
      });
    }

    it('names every bad field at once', async () => {
      const res = await stack.call('POST', '/v1/plans', { key: brand.key, body: { code: 'bad', name: '', recurringFee: '-1', billingPeriod: 'P1M', extra: 1 } });
      assertBadRequest(res, ['body.extra', 'body.name', 'body.recurringFee']);
    });

    it('checks the fee against the currency of the brand (JPY has no decimals)', async () => {
      const yen = await stack.brand({ currency: 'JPY' });
      const bad = await stack.call('POST', '/v1/plans', { key: yen.key, body: plan('basic', { recurringFee: '980.50' }) });
      assertBadRequest(bad, ['body.recurringFee']);
      assert.match(bad.json.error.details[0].message, /JPY amounts have at most 0 decimal places/);
      assert.equal((await planRows(yen.id, 'basic')).length, 0);
      const ok = await stack.call('POST', '/v1/plans', { key: yen.key, body: plan('basic', { recurringFee: '980' }) });
      assert.equal(ok.status, 201, ok.text);
      assert.deepEqual(ok.json.recurringFee, { amount: '980', currency: 'JPY', minor: 980 });
    });

    it('lets a live brand bill daily but not every minute or hour', async () => {
      const live = await stack.brand({ mode: 'live' });
      for (const period of ['PT1M', 'PT1H']) {
        const res = await stack.call('POST', '/v1/plans', { key: live.key, body: plan('fast', { billingPeriod: period }) });
        assertBadRequest(res, ['body.billingPeriod']);
        assert.match(res.json.error.details[0].message, /at least one day/);
      }
      assert.equal((await planRows(live.id, 'fast')).length, 0);
      const daily = await stack.call('POST', '/v1/plans', { key: live.key, body: plan('fast', { billingPeriod: 'P1D' }) });
      assert.equal(daily.status, 201, daily.text);
      // A sandbox brand may bill every minute.
      const minute = await stack.call('POST', '/v1/plans', { key: brand.key, body: plan('fast', { billingPeriod: 'PT1M' }) });
      assert.equal(minute.status, 201, minute.text);
    });

    it('answers an unknown plan with 404 and a malformed code with 400', async () => {
      const missing = await stack.call('GET', '/v1/plans/nothing-here', { key: brand.key });
      assert.equal(missing.status, 404);
      assert.equal(missing.json.error.code, 'NOT_FOUND');
      assert.deepEqual(fields(missing), ['params.code']);
      assertBadRequest(await stack.call('GET', '/v1/plans/Not%20A%20Code', { key: brand.key }), ['params.code']);
      assert.equal((await stack.call('GET', '/v1/plans', { key: null })).status, 401);
    });
  });

  describe('policies', () => {
    it('serves the default of every kind until the brand sets its own', async () => {
      const fresh = await stack.brand();
      const dunning = await stack.call('GET', '/v1/policies/dunning', { key: fresh.key });
      assert.equal(dunning.status, 200, dunning.text);
      assert.deepEqual(dunning.json, { kind: 'dunning', version: 0, custom: false, updatedAt: null, document: DEFAULT_POLICIES.dunning });
      const all = await stack.call('GET', '/v1/policies', { key: fresh.key });
      assert.equal(all.status, 200);
      assert.deepEqual(all.json.data.map((p: { kind: string }) => p.kind), POLICY_KINDS);
      assert.ok(all.json.data.every((p: { custom: boolean }) => !p.custom));
    });

    it('stores a valid policy as version 1, a change as version 2, and the same document again changes nothing', async () => {
      const document = { retrySchedule: ['PT5M', 'PT15M'], gracePeriod: 'PT30M', writeOffAfter: 'P1D' };
      const first = await stack.call('PUT', '/v1/policies/dunning', { key: brand.key, body: document });
      assert.equal(first.status, 200, first.text);
      assert.equal(first.json.version, 1);
      assert.equal(first.json.custom, true);
      assert.deepEqual(first.json.document, document);
      assert.ok(first.json.updatedAt);

      const same = await stack.call('PUT', '/v1/policies/dunning', { key: brand.key, body: document });
      assert.equal(same.status, 200);
      assert.deepEqual(same.json, first.json);

      const second = await stack.call('PUT', '/v1/policies/dunning', { key: brand.key, body: { ...document, gracePeriod: 'PT45M' } });
      assert.equal(second.status, 200, second.text);
      assert.equal(second.json.version, 2);
      const read = await stack.call('GET', '/v1/policies/dunning', { key: brand.key });
      assert.deepEqual(read.json, second.json);
      assert.equal((await policyRow(brand.id, 'dunning')).version, 2);
    });

    it('rejects an invalid document with 400 naming body fields and keeps the stored one', async () => {
      const stored = await stack.call('PUT', '/v1/policies/acquisition', {
        key: brand.key,
        body: { nurture: [{ after: 'PT2M', template: 'hello' }], leadExpiresAfter: 'PT30M' },
      });
      assert.equal(stored.status, 200, stored.text);
      const before = await policyRow(brand.id, 'acquisition');

      const bad = await stack.call('PUT', '/v1/policies/acquisition', {
        key: brand.key,
        body: { nurture: [{ after: 'two minutes', template: 'hello' }], leadExpiresAfter: 'PT30M', colour: 'red' },
      });
      assertBadRequest(bad, ['body.colour', 'body.nurture.0.after']);
      const tooShort = await stack.call('PUT', '/v1/policies/acquisition', {
        key: brand.key,
        body: { nurture: [{ after: 'PT30S', template: 'hello' }], leadExpiresAfter: 'PT30M' },
      });
      assertBadRequest(tooShort, ['body.nurture.0.after']);
      assertBadRequest(await stack.call('PUT', '/v1/policies/acquisition', { key: brand.key, body: [1, 2] }), ['body']);

      assert.deepEqual(await policyRow(brand.id, 'acquisition'), before);
      assert.deepEqual((await stack.call('GET', '/v1/policies/acquisition', { key: brand.key })).json, stored.json);
    });

    it('rejects offer rules for a plan the brand does not sell', async () => {
      const shop = await stack.brand();
      assert.equal((await stack.call('POST', '/v1/plans', { key: shop.key, body: plan('starter') })).status, 201);
      const rules = [
        { id: 'de', when: { country: ['DE'] }, plan: 'starter', discountPercent: 20, discountPeriods: 3 },
        { id: 'vip', when: { segment: ['vip'] }, plan: 'gold' },
      ];
      const bad = await stack.call('PUT', '/v1/policies/offers', { key: shop.key, body: { rules } });
      assertBadRequest(bad, ['body.rules.1.plan']);
      assert.match(bad.json.error.details[0].message, /no plan "gold"/);
      assert.equal(await policyRow(shop.id, 'offers'), undefined);

      const ok = await stack.call('PUT', '/v1/policies/offers', { key: shop.key, body: { rules: [rules[0]] } });
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(ok.json.document, { rules: [rules[0]], horizonPeriods: 12 });
    });

    it('holds policy durations to the brand mode', async () => {
      const live = await stack.brand({ mode: 'live' });
      const minutes = { retrySchedule: ['PT5M', 'P1D'], gracePeriod: 'PT12H', writeOffAfter: 'P30D' };
      assertBadRequest(await stack.call('PUT', '/v1/policies/dunning', { key: live.key, body: minutes }), ['body.gracePeriod', 'body.retrySchedule.0']);
      assertBadRequest(
        await stack.call('PUT', '/v1/policies/disputes', { key: live.key, body: { ...DEFAULT_POLICIES.disputes, operatorDecisionDeadline: 'PT1H' } }),
        ['body.operatorDecisionDeadline'],
      );
      assert.equal(await policyRow(live.id, 'dunning'), undefined);
      assert.equal(await policyRow(live.id, 'disputes'), undefined);
      const sandbox = await stack.brand();
      assert.equal((await stack.call('PUT', '/v1/policies/dunning', { key: sandbox.key, body: minutes })).status, 200);
    });

    it('answers an unknown kind with 404 naming params.kind, writing nothing', async () => {
      for (const method of ['GET', 'PUT']) {
        const res = await stack.call(method, '/v1/policies/taxes', { key: brand.key, body: method === 'PUT' ? { rate: 19 } : undefined });
        assert.equal(res.status, 404, res.text);
        assert.equal(res.json.error.code, 'NOT_FOUND');
        assert.deepEqual(fields(res), ['params.kind']);
      }
      assert.equal(await policyRow(brand.id, 'taxes'), undefined);
    });
  });

  it("keeps each brand's plans and policies to itself", async () => {
    const a = await stack.brand({ currency: 'USD' });
    const b = await stack.brand({ currency: 'EUR' });
    const own = await stack.call('POST', '/v1/plans', { key: a.key, body: plan('shared', { recurringFee: '10.00' }) });
    assert.equal(own.status, 201);
    await stack.call('POST', '/v1/plans', { key: a.key, body: plan('shared', { recurringFee: '12.00' }) });
    assert.equal((await stack.call('PUT', '/v1/policies/offers', { key: a.key, body: { rules: [{ id: 'all', plan: 'shared' }] } })).status, 200);

    assert.deepEqual((await stack.call('GET', '/v1/plans', { key: b.key })).json, { data: [] });
    assert.equal((await stack.call('GET', '/v1/plans/shared', { key: b.key })).status, 404);
    const offersOfB = await stack.call('GET', '/v1/policies/offers', { key: b.key });
    assert.equal(offersOfB.json.custom, false);
    // B's offer rules may not point at A's plan.
    assertBadRequest(await stack.call('PUT', '/v1/policies/offers', { key: b.key, body: { rules: [{ id: 'all', plan: 'shared' }] } }), ['body.rules.0.plan']);

    // The same code is B's own plan, starting at version 1 in B's currency.
    const theirs = await stack.call('POST', '/v1/plans', { key: b.key, body: plan('shared', { recurringFee: '10.00' }) });
    assert.equal(theirs.status, 201, theirs.text);
    assert.equal(theirs.json.version, 1);
    assert.deepEqual(theirs.json.recurringFee, { amount: '10.00', currency: 'EUR', minor: 1000 });
    const ofA = await stack.call('GET', '/v1/plans/shared', { key: a.key });
    assert.deepEqual(ofA.json.data.map((p: { version: number; recurringFee: { currency: string } }) => [p.version, p.recurringFee.currency]), [
      [2, 'USD'],
      [1, 'USD'],
    ]);
  });

  it('describes plans and policies in the OpenAPI document', async () => {
    const doc = await stack.call('GET', '/v1/openapi.json', { key: null });
    assert.equal(doc.status, 200);
    assert.ok(doc.json.paths['/v1/plans'].get && doc.json.paths['/v1/plans'].post);
    assert.ok(doc.json.paths['/v1/plans/{code}'].get);
    assert.ok(doc.json.paths['/v1/policies'].get);
    assert.ok(doc.json.paths['/v1/policies/{kind}'].get && doc.json.paths['/v1/policies/{kind}'].put);
    assert.deepEqual(doc.json.components.schemas.CreatePlan.required.sort(), ['billingPeriod', 'code', 'name', 'recurringFee']);
    assert.ok(doc.json.components.schemas.OffersPolicy);
  });

  describe('demo seed', () => {
    const snapshot = async (brandId: string) => ({
      plans: await stack.db('plans').where({ brand_id: brandId }).orderBy(['code', 'version']),
      policies: await stack.db('policies').where({ brand_id: brandId }).orderBy('kind'),
    });

    it('seeds the catalog and policies once; running it again changes nothing', async () => {
      const demo = await stack.brand({ mode: 'sandbox', currency: 'USD' });
      const first = await seedDemoBrand(stack.db, demo.id);
      assert.deepEqual(first, { plans: ['starter', 'pro', 'enterprise', 'minute'], policies: ['offers', 'acquisition'], skipped: [] });
      const before = await snapshot(demo.id);
      assert.equal(before.plans.length, 4);
      assert.equal(before.policies.length, 2);

      const second = await seedDemoBrand(stack.db, demo.id);
      assert.deepEqual(second, { plans: [], policies: [], skipped: [] });
      assert.deepEqual(await snapshot(demo.id), before);

      const plans = await stack.call('GET', '/v1/plans', { key: demo.key });
      const pro = plans.json.data.find((p: { code: string }) => p.code === 'pro');
      assert.deepEqual(pro.recurringFee, { amount: '49.00', currency: 'USD', minor: 4900 });
      assert.equal(pro.usage[0].unitPrice, '0.0004');
      const minute = plans.json.data.find((p: { code: string }) => p.code === 'minute');
      assert.equal(minute.billingPeriod, 'PT1M');
      const acquisition = await stack.call('GET', '/v1/policies/acquisition', { key: demo.key });
      assert.equal(acquisition.json.document.leadExpiresAfter, 'PT30M');
    });

    it("keeps the operator's own plans and policies", async () => {
      const demo = await stack.brand({ mode: 'sandbox' });
      assert.equal((await stack.call('POST', '/v1/plans', { key: demo.key, body: plan('own') })).status, 201);
      const acquisition = { nurture: [], leadExpiresAfter: 'P7D' };
      assert.equal((await stack.call('PUT', '/v1/policies/acquisition', { key: demo.key, body: acquisition })).status, 200);

      const result = await seedDemoBrand(stack.db, demo.id);
      assert.deepEqual(result.plans, []);
      assert.deepEqual(result.policies, []);
      // The demo offer rules name plans this brand does not have, so they are left out.
      assert.deepEqual(result.skipped.map((s) => s.kind), ['offers']);
      const { plans, policies } = await snapshot(demo.id);
      assert.deepEqual(plans.map((p) => p.code), ['own']);
      assert.deepEqual(policies.map((p) => [p.kind, p.version, p.document]), [['acquisition', 1, acquisition]]);
    });
  });
});
