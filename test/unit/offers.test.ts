import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { Buyer, chooseOffer, discountedFeeMinor, expectedMarginMinor, matchRule, OfferPlan } from '../../domain/offers';
import { OfferRule, OffersPolicy } from '../../domain/policies';

const plan = (code: string, fee: number, cost = 0, extra: Partial<OfferPlan> = {}): OfferPlan => ({
  code,
  version: 1,
  name: code[0]!.toUpperCase() + code.slice(1),
  currency: 'USD',
  recurringFeeMinor: fee,
  costToServeMinor: cost,
  billingPeriod: 'P1M',
  ...extra,
});

/** Rules as an operator writes them, through the policy schema (defaults applied). */
const rules = (...rs: unknown[]): OfferRule[] => OffersPolicy.parse({ rules: rs }).rules;

const PLANS = [plan('basic', 1000, 200), plan('pro', 5000, 1000), plan('team', 20000, 4000)];

describe('offer engine (domain/offers)', () => {
  describe('discounted fee', () => {
    it('rounds exactly, half away from zero, to the minor unit', () => {
      const cases: Array<[number, number, number]> = [
        [999, 12.5, 874], // 874.125
        [1, 50, 1], // 0.5 rounds away from zero
        [3, 50, 2], // 1.5
        [5, 10, 5], // 4.5
        [1999, 33.33, 1333], // 1332.7333
        [10, 0.05, 10], // 9.995
        [1000, 0, 1000],
        [1000, 100, 0],
        [0, 37.5, 0],
        [100, 0.01, 100], // 99.99
        [1_000_000_000_000, 0.01, 999_900_000_000],
        [Number.MAX_SAFE_INTEGER, 50, 4_503_599_627_370_496], // exact beyond float precision
      ];
      for (const [fee, pct, expected] of cases) assert.equal(discountedFeeMinor(fee, pct), expected, `${fee} at ${pct} %`);
    });

    it('is never negative nor above list, and matches the exact rational result', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 10_000 }), (fee, basisPoints) => {
          const d = discountedFeeMinor(fee, basisPoints / 100);
          assert.ok(d >= 0 && d <= fee);
          // exact = fee × (10000 − bp) / 10000; half away from zero: exact − ½ ≤ d < exact + ½ … with ties up.
          const twiceExact = 2n * BigInt(fee) * BigInt(10_000 - basisPoints);
          const twiceD = 2n * BigInt(d) * 10_000n;
          assert.ok(twiceD - 10_000n <= twiceExact && twiceExact < twiceD + 10_000n, `${fee} at ${basisPoints / 100} % gave ${d}`);
        }),
      );
    });

    it('never charges more for a bigger discount', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 1e12 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (fee, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          assert.ok(discountedFeeMinor(fee, hi / 100) <= discountedFeeMinor(fee, lo / 100));
        }),
      );
    });

    it('rejects a percentage outside 0..100 and a fractional fee', () => {
      assert.throws(() => discountedFeeMinor(100, 101), RangeError);
      assert.throws(() => discountedFeeMinor(100, -1), RangeError);
      assert.throws(() => discountedFeeMinor(100, Number.NaN), RangeError);
      assert.throws(() => discountedFeeMinor(10.5, 10), RangeError);
    });
  });

  describe('expected margin', () => {
    it('is the sum over the horizon of the fee (discounted while the discount lasts) minus cost', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 1e9 }),
          fc.integer({ min: 0, max: 1e9 }),
          fc.integer({ min: 0, max: 10_000 }),
          fc.option(fc.integer({ min: 1, max: 200 }), { nil: null }),
          fc.integer({ min: 1, max: 120 }),
          (fee, cost, bp, periods, horizon) => {
            let naive = 0n;
            for (let p = 1; p <= horizon; p += 1) {
              const charged = periods === null || p <= periods ? discountedFeeMinor(fee, bp / 100) : fee;
              naive += BigInt(charged) - BigInt(cost);
            }
            assert.equal(expectedMarginMinor({ recurringFeeMinor: fee, costToServeMinor: cost }, bp / 100, periods, horizon), naive);
          },
        ),
      );
    });

    it('weighs a 3-period discount against 12 periods of revenue', () => {
      // 3 × (5000 × 0.8 − 1000) + 9 × (5000 − 1000) = 9000 + 36000
      assert.equal(expectedMarginMinor({ recurringFeeMinor: 5000, costToServeMinor: 1000 }, 20, 3, 12), 45_000n);
      assert.equal(expectedMarginMinor({ recurringFeeMinor: 5000, costToServeMinor: 1000 }, 20, null, 12), 36_000n);
      assert.throws(() => expectedMarginMinor({ recurringFeeMinor: 5000, costToServeMinor: 1000 }, 20, null, 0), RangeError);
    });
  });

  describe('matching', () => {
    it('holds only when every condition present holds; a missing attribute never matches', () => {
      assert.equal(matchRule({}, {}).matches, true);
      assert.equal(matchRule({ country: ['DE', 'AT'] }, { country: 'AT' }).matches, true);
      assert.equal(matchRule({ country: ['DE'] }, {}).matches, false);
      assert.deepEqual(matchRule({ country: ['DE'] }, {}).conditions, ['buyer has no country (rule wants DE)']);
      assert.equal(matchRule({ country: ['DE'], segment: ['startup'] }, { country: 'DE', segment: 'smb' }).matches, false);
      assert.equal(matchRule({ minVolume: 10, maxVolume: 20 }, { volume: 10 }).matches, true);
      assert.equal(matchRule({ minVolume: 10, maxVolume: 20 }, { volume: 20 }).matches, true);
      assert.equal(matchRule({ minVolume: 10, maxVolume: 20 }, { volume: 21 }).matches, false);
      assert.equal(matchRule({ minVolume: 10 }, { volume: 9 }).matches, false);
      assert.equal(matchRule({ maxVolume: 0 }, { volume: 0 }).matches, true);
      assert.equal(matchRule({ minVolume: 0 }, {}).matches, false);
      assert.deepEqual(matchRule({ country: ['DE'], minVolume: 5 }, { country: 'DE', volume: 7 }).conditions, ['country=DE', 'volume=7 (≥ 5)']);
    });
  });

  describe('choosing an offer', () => {
    const policy = rules(
      { id: 'de-pro', when: { country: ['DE'] }, plan: 'pro', discountPercent: 10, discountPeriods: 3 },
      { id: 'startup-basic', when: { segment: ['startup'] }, plan: 'basic', discountPercent: 50 },
      { id: 'partner-team', when: { source: ['partner'] }, plan: 'team', discountPercent: 20, discountPeriods: 6 },
      { id: 'everyone-basic', plan: 'basic' },
    );

    it('offers the matching rule with the highest margin and says why', () => {
      const { offer, considered } = chooseOffer({ rules: policy, plans: PLANS, buyer: { country: 'DE' }, horizonPeriods: 12 });
      assert.ok(offer);
      assert.equal(offer.rule, 'de-pro');
      assert.deepEqual(offer.plan, { code: 'pro', version: 1, name: 'Pro' });
      assert.equal(offer.listPriceMinor, 5000);
      assert.equal(offer.firstPeriodPriceMinor, 4500);
      assert.equal(offer.discountPercent, 10);
      assert.equal(offer.discountPeriods, 3);
      // 3 × (4500 − 1000) + 9 × (5000 − 1000)
      assert.equal(offer.expectedMarginMinor, 46_500);
      assert.equal(offer.reason, 'rule "de-pro" matched country=DE; highest margin of 2 matching rules');
      assert.deepEqual(
        considered.map((c) => [c.rule, c.eligible]),
        [['de-pro', true], ['startup-basic', false], ['partner-team', false], ['everyone-basic', true]],
      );
      assert.match(considered[1]!.reason, /buyer has no segment/);
      assert.equal(considered[3]!.expectedMarginMinor, 12 * (1000 - 200));
    });

    it('prefers a smaller discount on a bigger plan when that earns more', () => {
      const startup = chooseOffer({ rules: policy, plans: PLANS, buyer: { segment: 'startup' }, horizonPeriods: 12 });
      // basic at 50 % forever: 12 × (500 − 200) = 3600 < basic at list 12 × 800 = 9600
      assert.equal(startup.offer?.rule, 'everyone-basic');
      const partner = chooseOffer({ rules: policy, plans: PLANS, buyer: { source: 'partner' }, horizonPeriods: 12 });
      assert.equal(partner.offer?.rule, 'partner-team');
      assert.equal(partner.offer?.firstPeriodPriceMinor, 16_000);
      const nobody = chooseOffer({ rules: policy, plans: PLANS, buyer: {}, horizonPeriods: 12 });
      assert.equal(nobody.offer?.rule, 'everyone-basic');
      assert.equal(nobody.offer?.reason, 'rule "everyone-basic" matches every buyer; the only matching rule');
      assert.equal(nobody.offer?.discountPeriods, null);
    });

    it('gives a tie to the earlier rule', () => {
      const tied = rules({ id: 'first', plan: 'basic' }, { id: 'second', when: { country: ['DE'] }, plan: 'basic' });
      const { offer } = chooseOffer({ rules: tied, plans: PLANS, buyer: { country: 'DE' }, horizonPeriods: 12 });
      assert.equal(offer?.rule, 'first');
      assert.match(offer!.reason, /ties with "second"; the earlier rule wins/);
    });

    it('marks a rule for a plan missing from the catalog ineligible, without throwing', () => {
      const broken = rules({ id: 'ghost', plan: 'ghost', discountPercent: 5 }, { id: 'fallback', plan: 'basic' });
      const { offer, considered } = chooseOffer({ rules: broken, plans: PLANS, buyer: {}, horizonPeriods: 12 });
      assert.equal(offer?.rule, 'fallback');
      assert.deepEqual(considered[0], { rule: 'ghost', plan: 'ghost', eligible: false, reason: 'plan "ghost" is not in the catalog' });
    });

    it('offers nothing when no rule matches and no plan is requested', () => {
      const onlyDe = rules({ id: 'de', when: { country: ['DE'] }, plan: 'pro' });
      const result = chooseOffer({ rules: onlyDe, plans: PLANS, buyer: { country: 'FR' }, horizonPeriods: 12 });
      assert.equal(result.offer, null);
      assert.match(result.reason, /none of the 1 rule is eligible/);
      assert.equal(result.considered[0]!.reason, 'does not match: country=FR is not DE');
      assert.equal(chooseOffer({ rules: [], plans: PLANS, buyer: {}, horizonPeriods: 12 }).reason, 'no offer rules are configured');
    });

    describe('with a requested plan', () => {
      it('chooses only among rules for that plan', () => {
        const { offer, considered } = chooseOffer({ rules: policy, plans: PLANS, buyer: { country: 'DE', segment: 'startup' }, horizonPeriods: 12, requestedPlan: 'basic' });
        assert.equal(offer?.rule, 'everyone-basic');
        assert.match(offer!.reason, /highest margin of 2 matching rules for plan "basic"/);
        assert.equal(considered[0]!.eligible, false);
        assert.equal(considered[0]!.reason, 'offers plan "pro", not the requested "basic"');
      });

      it('offers the plan at list price when no rule for it matches', () => {
        const { offer, considered } = chooseOffer({ rules: policy, plans: PLANS, buyer: { country: 'FR' }, horizonPeriods: 12, requestedPlan: 'team' });
        assert.ok(offer);
        assert.equal(offer.rule, null);
        assert.equal(offer.listPriceMinor, 20_000);
        assert.equal(offer.firstPeriodPriceMinor, 20_000);
        assert.equal(offer.discountPercent, 0);
        assert.equal(offer.expectedMarginMinor, 12 * 16_000);
        assert.match(offer.reason, /^requested plan at list price: none of the 1 rule for plan "team" matches this buyer$/);
        assert.deepEqual(considered.at(-1), { rule: null, plan: 'team', eligible: true, reason: offer.reason, expectedMarginMinor: 192_000 });
      });

      it('offers nothing, with a reason, for a plan not in the catalog', () => {
        const result = chooseOffer({ rules: policy, plans: PLANS, buyer: {}, horizonPeriods: 12, requestedPlan: 'enterprise' });
        assert.equal(result.offer, null);
        assert.equal(result.reason, 'requested plan "enterprise" is not in the catalog');
      });
    });

    it('prices the newest version when the catalog holds several', () => {
      const versions = [plan('pro', 6000, 1000, { version: 2, name: 'Pro 2' }), plan('pro', 5000, 1000)];
      for (const plans of [versions, [...versions].reverse()]) {
        const { offer } = chooseOffer({ rules: rules({ id: 'all', plan: 'pro' }), plans, buyer: {}, horizonPeriods: 1 });
        assert.deepEqual(offer?.plan, { code: 'pro', version: 2, name: 'Pro 2' });
      }
    });

    it('never compares margins across currencies: the earliest eligible rule sets the currency', () => {
      const plans = [plan('eur', 1000, 0, { currency: 'EUR' }), plan('jpy', 100_000, 0, { currency: 'JPY' })];
      const { offer, considered } = chooseOffer({ rules: rules({ id: 'a', plan: 'eur' }, { id: 'b', plan: 'jpy' }), plans, buyer: {}, horizonPeriods: 12 });
      assert.equal(offer?.rule, 'a');
      assert.equal(offer?.currency, 'EUR');
      assert.equal(considered[1]!.eligible, false);
      assert.match(considered[1]!.reason, /priced in JPY; margins are compared in EUR/);
    });

    it('rejects a horizon below one period', () => {
      assert.throws(() => chooseOffer({ rules: policy, plans: PLANS, buyer: {}, horizonPeriods: 0 }), RangeError);
    });
  });

  describe('properties', () => {
    const SEGMENTS = ['startup', 'smb', 'enterprise'];
    const COUNTRIES = ['DE', 'FR', 'US'];
    const SOURCES = ['partner', 'ads', 'organic'];
    const CAMPAIGNS = ['spring', 'fall'];
    const CODES = ['basic', 'pro', 'team', 'ghost'];

    const list = (values: string[]) => fc.option(fc.subarray(values, { minLength: 1 }), { nil: undefined });
    const ruleArb = fc.record({
      when: fc.record({
        segment: list(SEGMENTS),
        country: list(COUNTRIES),
        source: list(SOURCES),
        campaign: list(CAMPAIGNS),
        minVolume: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
        maxVolume: fc.option(fc.integer({ min: 100, max: 1000 }), { nil: undefined }),
      }),
      plan: fc.constantFrom(...CODES),
      discountPercent: fc.integer({ min: 0, max: 10_000 }).map((bp) => bp / 100),
      discountPeriods: fc.option(fc.integer({ min: 1, max: 24 }), { nil: undefined }),
    });
    const rulesArb = fc.array(ruleArb, { maxLength: 12 }).map((rs) => rules(...rs.map((r, i) => ({ id: `r${i}`, ...r, when: dropUndefined(r.when) }))));
    const priceArb = fc.tuple(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 50_000 }));
    // A catalog may hold older versions too; only the newest of each code is ever priced.
    const plansArb = fc
      .subarray(CODES.slice(0, 3))
      .chain((codes) =>
        fc.tuple(...codes.map((code) => fc.tuple(priceArb, fc.option(priceArb, { nil: undefined })).map(([[fee, cost], old]) => [
          plan(code, fee, cost, { version: 2 }),
          ...(old ? [plan(code, old[0], old[1])] : []),
        ]))),
      )
      .map((perCode) => perCode.flat());
    const buyerArb: fc.Arbitrary<Buyer> = fc
      .record({
        segment: fc.option(fc.constantFrom(...SEGMENTS), { nil: undefined }),
        country: fc.option(fc.constantFrom(...COUNTRIES), { nil: undefined }),
        source: fc.option(fc.constantFrom(...SOURCES), { nil: undefined }),
        campaign: fc.option(fc.constantFrom(...CAMPAIGNS), { nil: undefined }),
        volume: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
      })
      .map(dropUndefined);
    const inputArb = fc.record({
      rules: rulesArb,
      plans: plansArb,
      buyer: buyerArb,
      horizonPeriods: fc.integer({ min: 1, max: 36 }),
      requestedPlan: fc.option(fc.constantFrom(...CODES), { nil: undefined }),
    });

    /** The matching rule, written independently of the engine. */
    function matches(rule: OfferRule, buyer: Buyer): boolean {
      const w = rule.when;
      const inList = (allowed: string[] | undefined, v: string | undefined) => allowed === undefined || (v !== undefined && allowed.includes(v));
      return (
        inList(w.segment, buyer.segment) &&
        inList(w.country, buyer.country) &&
        inList(w.source, buyer.source) &&
        inList(w.campaign, buyer.campaign) &&
        (w.minVolume === undefined || (buyer.volume !== undefined && buyer.volume >= w.minVolume)) &&
        (w.maxVolume === undefined || (buyer.volume !== undefined && buyer.volume <= w.maxVolume))
      );
    }

    it("the chosen offer's margin is at least every other eligible candidate's", () => {
      fc.assert(
        fc.property(inputArb, (input) => {
          const { offer, considered } = chooseOffer(input);
          const eligible = considered.filter((c) => c.eligible);
          if (!offer) {
            assert.equal(eligible.length, 0);
            return;
          }
          for (const c of eligible) assert.ok(offer.expectedMarginMinor >= c.expectedMarginMinor!, `${c.rule} earns more`);
          assert.ok(eligible.some((c) => c.rule === offer.rule && c.expectedMarginMinor === offer.expectedMarginMinor));
        }),
        { numRuns: 500 },
      );
    });

    it('never picks a rule the buyer does not match, nor another plan than the requested one', () => {
      fc.assert(
        fc.property(inputArb, (input) => {
          const { offer } = chooseOffer(input);
          if (!offer) return;
          if (input.requestedPlan !== undefined) assert.equal(offer.plan.code, input.requestedPlan);
          if (offer.rule === null) {
            assert.ok(input.requestedPlan !== undefined, 'a rule-less offer is only the requested plan at list price');
            assert.ok(!input.rules.some((r) => r.plan === input.requestedPlan && matches(r, input.buyer)));
            return;
          }
          const rule = input.rules.find((r) => r.id === offer.rule)!;
          assert.ok(matches(rule, input.buyer));
          assert.equal(rule.plan, offer.plan.code);
        }),
        { numRuns: 500 },
      );
    });

    it('offers a price between zero and list, and a rule whenever one matches a priced plan', () => {
      fc.assert(
        fc.property(inputArb, (input) => {
          const { offer } = chooseOffer(input);
          const codes = new Set(input.plans.map((p) => p.code));
          const anyMatch = input.rules.some((r) => codes.has(r.plan) && matches(r, input.buyer) && (input.requestedPlan === undefined || r.plan === input.requestedPlan));
          assert.equal(offer !== null && offer.rule !== null, anyMatch);
          if (offer) {
            assert.ok(offer.firstPeriodPriceMinor >= 0 && offer.firstPeriodPriceMinor <= offer.listPriceMinor);
            assert.equal(offer.listPriceMinor, input.plans.find((p) => p.code === offer.plan.code && p.version === 2)!.recurringFeeMinor);
            assert.equal(offer.plan.version, 2);
          }
        }),
        { numRuns: 500 },
      );
    });

    it('does not depend on the order of the plans', () => {
      fc.assert(
        fc.property(inputArb, fc.nat(), (input, seed) => {
          const shuffled = [...input.plans].sort((a, b) => hash(a.code, seed) - hash(b.code, seed));
          assert.deepEqual(chooseOffer({ ...input, plans: shuffled }), chooseOffer(input));
        }),
        { numRuns: 300 },
      );
    });

    it('is deterministic: the same input gives the same decision', () => {
      fc.assert(fc.property(inputArb, (input) => assert.deepEqual(chooseOffer(input), chooseOffer(structuredClone(input)))), { numRuns: 100 });
    });
  });

  it('imports nothing at run time, so workflow code may use it', () => {
    const compiled = fs.readFileSync(path.join(__dirname, '../../domain/offers.js'), 'utf8');
    assert.deepEqual(compiled.match(/require\([^)]*\)/g) ?? [], []);
    assert.doesNotMatch(compiled, /Date\.now|Math\.random|new Date\(/);
  });
});

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function hash(s: string, seed: number): number {
  let h = seed >>> 0;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 2654435761) >>> 0;
  return h;
}
