import assert from 'node:assert/strict';
import { startStack, Stack } from '../support/stack';

/**
 * GET /v1/offers/preview over HTTP against PostgreSQL. Plans and the offers policy are written
 * straight into their tables: the catalog and policy APIs are separate concerns.
 */
describe('offer preview API (integration)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let brandA: { id: string; key: string };
  let brandB: { id: string; key: string };

  async function insertPlan(brandId: string, code: string, name: string, feeMinor: number, costMinor: number, currency = 'USD', version = 1) {
    await stack.db('plans').insert({
      brand_id: brandId,
      code,
      version,
      name,
      currency,
      recurring_fee_minor: feeMinor,
      cost_to_serve_minor: costMinor,
      billing_period: 'P1M',
    });
  }

  async function setOffersPolicy(brandId: string, document: unknown) {
    await stack.db('policies').insert({ brand_id: brandId, kind: 'offers', version: 1, document: JSON.stringify(document) });
  }

  const preview = (query: string, key = brandA.key) => stack.call('GET', `/v1/offers/preview${query}`, { key });

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brandA = await stack.brand();
    brandB = await stack.brand({ currency: 'EUR' });
    await insertPlan(brandA.id, 'basic', 'Basic v1', 900, 200);
    await insertPlan(brandA.id, 'basic', 'Basic', 999, 200, 'USD', 2);
    await insertPlan(brandA.id, 'pro', 'Pro', 5000, 1000);
    await insertPlan(brandA.id, 'team', 'Team', 20000, 4000);
    await insertPlan(brandA.id, 'enterprise', 'Enterprise', 100000, 30000);
    await setOffersPolicy(brandA.id, {
      horizonPeriods: 12,
      rules: [
        { id: 'de-pro', description: 'German buyers get Pro, 12.5 % off for 3 months', when: { country: ['DE', 'AT'] }, plan: 'pro', discountPercent: 12.5, discountPeriods: 3 },
        { id: 'startup-basic', when: { segment: ['startup'] }, plan: 'basic', discountPercent: 12.5 },
        { id: 'partner-team', when: { source: ['partner'], maxVolume: 500 }, plan: 'team', discountPercent: 20, discountPeriods: 6 },
        { id: 'big-enterprise', when: { minVolume: 1000, country: ['US'] }, plan: 'enterprise' },
        { id: 'ghost', when: { campaign: ['ghost'] }, plan: 'retired' },
        { id: 'everyone-basic', plan: 'basic' },
      ],
    });
    await insertPlan(brandB.id, 'pro', 'Pro EU', 4000, 500, 'EUR');
    await setOffersPolicy(brandB.id, { rules: [{ id: 'fr-pro', when: { country: ['FR'] }, plan: 'pro' }] });
  });

  after(async () => {
    await stack?.stop();
  });

  it('offers German buyers Pro with its discount, and shows every rule it weighed', async () => {
    const res = await preview('?country=DE');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.buyer, { country: 'DE' });
    // 3 × (4375 − 1000) + 9 × (5000 − 1000) = 10125 + 36000
    assert.deepEqual(res.json.offer, {
      rule: 'de-pro',
      plan: { code: 'pro', version: 1, name: 'Pro' },
      listPrice: { amount: '50.00', currency: 'USD', minor: 5000 },
      firstPeriodPrice: { amount: '43.75', currency: 'USD', minor: 4375 },
      discountPercent: 12.5,
      discountPeriods: 3,
      expectedMargin: { amount: '461.25', currency: 'USD', minor: 46125 },
      reason: 'rule "de-pro" matched country=DE; highest margin of 2 matching rules',
    });
    assert.equal(res.json.reason, res.json.offer.reason);
    assert.equal(res.json.horizonPeriods, 12);
    assert.deepEqual(
      res.json.considered.map((c: { rule: string; eligible: boolean }) => [c.rule, c.eligible]),
      [['de-pro', true], ['startup-basic', false], ['partner-team', false], ['big-enterprise', false], ['ghost', false], ['everyone-basic', true]],
    );
    assert.deepEqual(res.json.considered[4], { rule: 'ghost', plan: 'retired', eligible: false, reason: 'plan "retired" is not in the catalog' });
    assert.deepEqual(res.json.considered[5].expectedMargin, { amount: '95.88', currency: 'USD', minor: 9588 });
  });

  it('prices the newest plan version and rounds a 12.5 % discount exactly for a startup', async () => {
    const res = await preview('?segment=startup&plan=basic');
    assert.equal(res.status, 200, res.text);
    // startup-basic: 12 × (874 − 200) = 8088 < everyone-basic: 12 × (999 − 200) = 9588
    assert.equal(res.json.offer.rule, 'everyone-basic');
    assert.deepEqual(res.json.offer.plan, { code: 'basic', version: 2, name: 'Basic' });
    const startup = res.json.considered.find((c: { rule: string }) => c.rule === 'startup-basic');
    assert.deepEqual(startup, { rule: 'startup-basic', plan: 'basic', eligible: true, reason: 'matched segment=startup', expectedMargin: { amount: '80.88', currency: 'USD', minor: 8088 } });
  });

  it('offers a partner the Team plan while its volume is within the rule', async () => {
    const res = await preview('?source=partner&volume=200&campaign=spring');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.offer.rule, 'partner-team');
    assert.deepEqual(res.json.offer.firstPeriodPrice, { amount: '160.00', currency: 'USD', minor: 16000 });
    assert.equal(res.json.offer.reason, 'rule "partner-team" matched source=partner, volume=200 (≤ 500); highest margin of 2 matching rules');
    assert.deepEqual(res.json.buyer, { source: 'partner', campaign: 'spring', volume: 200 });

    const tooBig = await preview('?source=partner&volume=501');
    assert.equal(tooBig.json.offer.rule, 'everyone-basic');
    assert.match(tooBig.json.considered[2].reason, /volume=501 is not ≤ 500/);
  });

  it('falls back to the catch-all rule for a buyer nothing else fits', async () => {
    const res = await preview('?country=FR&segment=smb');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.offer.rule, 'everyone-basic');
    assert.equal(res.json.offer.reason, 'rule "everyone-basic" matches every buyer; the only matching rule');
    assert.equal(res.json.offer.discountPeriods, null);
    assert.deepEqual(res.json.offer.firstPeriodPrice, res.json.offer.listPrice);
  });

  it('honours a requested plan: its best rule, else list price, else no offer', async () => {
    const discounted = await preview('?country=AT&plan=pro');
    assert.equal(discounted.json.offer.rule, 'de-pro');
    assert.match(discounted.json.offer.reason, /the only matching rule for plan "pro"/);
    assert.equal(discounted.json.considered.find((c: { rule: string }) => c.rule === 'everyone-basic').reason, 'offers plan "basic", not the requested "pro"');

    const listPrice = await preview('?country=FR&plan=enterprise');
    assert.equal(listPrice.status, 200, listPrice.text);
    assert.equal(listPrice.json.offer.rule, null);
    assert.deepEqual(listPrice.json.offer.plan, { code: 'enterprise', version: 1, name: 'Enterprise' });
    assert.deepEqual(listPrice.json.offer.firstPeriodPrice, { amount: '1000.00', currency: 'USD', minor: 100000 });
    assert.equal(listPrice.json.offer.discountPercent, 0);
    assert.match(listPrice.json.offer.reason, /^requested plan at list price/);

    const missing = await preview('?plan=platinum');
    assert.equal(missing.status, 200, missing.text);
    assert.equal(missing.json.offer, null);
    assert.equal(missing.json.reason, 'requested plan "platinum" is not in the catalog');
  });

  it('offers nothing when no rule matches', async () => {
    const res = await preview('?country=DE', brandB.key);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.offer, null);
    assert.deepEqual(res.json.considered, [{ rule: 'fr-pro', plan: 'pro', eligible: false, reason: 'does not match: country=DE is not FR' }]);
    assert.match(res.json.reason, /^no offer/);
  });

  it('answers a bad query with 400 naming each field', async () => {
    const cases: Array<[string, string[]]> = [
      ['?country=de', ['query.country']],
      ['?country=DEU', ['query.country']],
      ['?volume=-1', ['query.volume']],
      ['?volume=1.5', ['query.volume']],
      ['?plan=Not%20A%20Code', ['query.plan']],
      ['?colour=blue', ['query.colour']],
      ['?segment=', ['query.segment']],
      ['?country=DE&country=FR', ['query.country']],
      ['?country=x&volume=lots', ['query.country', 'query.volume']],
    ];
    for (const [query, fields] of cases) {
      const res = await preview(query);
      assert.equal(res.status, 400, `${query}: ${res.text}`);
      assert.equal(res.json.error.code, 'VALIDATION_FAILED');
      assert.deepEqual(res.json.error.details.map((d: { field: string }) => d.field).sort(), fields, query);
    }
    const unknown = await preview('?colour=blue');
    assert.equal(unknown.json.error.details[0].message, 'unknown field');
    assert.equal((await stack.call('GET', '/v1/offers/preview', { key: null })).status, 401);
  });

  it("never shows one brand's rules or plans to another brand's key", async () => {
    const b = await preview('?country=FR', brandB.key);
    assert.equal(b.json.offer.rule, 'fr-pro');
    assert.deepEqual(b.json.offer.listPrice, { amount: '40.00', currency: 'EUR', minor: 4000 });
    assert.deepEqual(b.json.considered.map((c: { rule: string }) => c.rule), ['fr-pro']);
    assert.equal(b.json.horizonPeriods, 12, "brand B's policy takes the default horizon");

    for (const query of ['?plan=team', '?plan=basic&segment=startup']) {
      const res = await preview(query, brandB.key);
      assert.equal(res.json.offer, null, query);
      assert.match(res.json.reason, /is not in the catalog/);
    }
    const a = await preview('?country=FR&plan=pro');
    assert.equal(a.json.offer.rule, null, "brand A never sees brand B's fr-pro rule");
    assert.deepEqual(a.json.offer.listPrice, { amount: '50.00', currency: 'USD', minor: 5000 });
  });

  it('documents the endpoint and its query in the OpenAPI document', async () => {
    const doc = await stack.call('GET', '/v1/openapi.json', { key: null });
    const op = doc.json.paths['/v1/offers/preview'].get;
    assert.deepEqual(op.parameters.map((p: { name: string }) => p.name).sort(), ['campaign', 'country', 'plan', 'segment', 'source', 'volume']);
    assert.ok(op.responses['200'] && op.responses['400']);
  });
});
