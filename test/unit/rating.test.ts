/**
 * domain/rating.ts: a period's usage priced per model at full precision, clamped, and rounded
 * once to minor units — worked examples with exact minor amounts, and properties.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageComponent } from '../../domain/catalog';
import { Decimal } from '../../domain/decimal';
import { minorExponent, roundToMinor } from '../../domain/money';
import { rateLines, rateUsage, type RatedUsage } from '../../domain/rating';

/** A component exactly as the catalog accepts it (so every fixture is a valid catalog entry). */
const component = (input: Record<string, unknown>): UsageComponent => UsageComponent.parse({ metric: 'api_calls', ...input });
const d = (s: string) => Decimal.parse(s);

const MICRO = component({ model: 'per_unit', unitPrice: '0.0004' });
/** The same tier table, rated graduated and volume. */
const TIERS = [
  { upTo: 1000, unitPrice: '0.01' },
  { upTo: 10000, unitPrice: '0.008' },
  { upTo: null, unitPrice: '0.005' },
];
const GRADUATED = component({ metric: 'storage_gb', model: 'graduated', tiers: TIERS });
const VOLUME = component({ metric: 'storage_gb', model: 'volume', tiers: TIERS });
const FEE_TIERS = [
  { upTo: 100, unitPrice: '0', flatFee: '5' },
  { upTo: null, unitPrice: '0.1', flatFee: '10' },
];
const PACKAGE = component({ metric: 'sms', model: 'package', packageSize: 1000, packagePrice: '5' });

function rangeError(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

/** Amount and minor units of one rating, for compact worked-example assertions. */
function amounts(r: RatedUsage): [string, number] {
  return [r.amountExact, r.amountMinor];
}

// ---- arbitraries -------------------------------------------------------------------------

const CURRENCIES = ['JPY', 'USD', 'KWD'] as const;
const currencyArb = fc.constantFrom(...CURRENCIES);

/** A non-negative decimal string with ≤ `digits` fractional digits and below `maxWhole`. */
function decimalStringArb(digits: number, maxWhole: bigint) {
  const step = 10n ** BigInt(18 - digits);
  return fc.bigInt({ min: 0n, max: maxWhole * 10n ** BigInt(digits) }).map((n) => Decimal.fromUnits(n * step).toString());
}
/** A catalog price: up to 12 fractional digits (micro-prices included). */
const priceArb = fc.oneof(decimalStringArb(12, 10n), decimalStringArb(4, 1000n), decimalStringArb(2, 100n));
/** A period total: usually whole units, sometimes fractional (≤ 6 digits: exact with any price). */
const quantityArb = fc.oneof(
  fc.nat({ max: 10_000_000 }).map(String),
  fc.nat({ max: 2_000 }).map(String),
  decimalStringArb(6, 100_000n),
);
const tiersArb = fc
  .uniqueArray(fc.integer({ min: 1, max: 20_000 }), { maxLength: 4 })
  .chain((bounds) => {
    const upTos: Array<number | null> = [...bounds.sort((a, b) => a - b), null];
    return fc.tuple(...upTos.map((upTo) => fc.record({ upTo: fc.constant(upTo), unitPrice: priceArb, flatFee: fc.option(priceArb, { nil: undefined }) })));
  })
  .map((tiers) => tiers.map(({ flatFee, ...t }) => (flatFee === undefined ? t : { ...t, flatFee })));
const clampArb = fc
  .tuple(fc.option(decimalStringArb(4, 500n), { nil: undefined }), fc.option(decimalStringArb(4, 500n), { nil: undefined }))
  .map(([a, b]) => {
    if (a !== undefined && b !== undefined && d(a).gt(d(b))) [a, b] = [b, a];
    return { ...(a === undefined ? {} : { minimumCharge: a }), ...(b === undefined ? {} : { maximumCharge: b }) };
  });
const includedArb = fc.oneof(fc.constant(0), fc.nat({ max: 5_000 }));

const perUnitArb = fc.record({ unitPrice: priceArb }).map((c) => ({ model: 'per_unit', ...c }));
const graduatedArb = tiersArb.map((tiers) => ({ model: 'graduated', tiers }));
const volumeArb = tiersArb.map((tiers) => ({ model: 'volume', tiers }));
const packageArb = fc.record({ packageSize: fc.integer({ min: 1, max: 5_000 }), packagePrice: priceArb }).map((c) => ({ model: 'package', ...c }));

function withExtras(model: fc.Arbitrary<Record<string, unknown>>) {
  return fc.tuple(model, includedArb, clampArb).map(([m, includedQuantity, clamp]) => component({ ...m, includedQuantity, ...clamp }));
}
const anyComponentArb = withExtras(fc.oneof(perUnitArb, graduatedArb, volumeArb, packageArb));

describe('domain/rating', () => {
  describe('per_unit, micro-prices and the one rounding', () => {
    it('1,234,567 calls at 0.0004 USD are 493.8268, billed as 49383 cents', () => {
      const r = rateUsage(MICRO, '1234567', 'USD');
      assert.deepEqual(amounts(r), ['493.8268', 49383]);
      assert.equal(r.unitPrice, '0.0004');
      assert.deepEqual(r.breakdown, [{ description: 'Per unit', quantity: '1234567', unitPrice: '0.0004', amountExact: '493.8268' }]);
      assert.deepEqual(r.adjustments, []);
    });

    it('1 call at 0.0004 USD is 0.0004 at full precision and 0 cents', () => {
      assert.deepEqual(amounts(rateUsage(MICRO, '1', 'USD')), ['0.0004', 0]);
    });

    it('12,500 calls at 0.0004 USD are exactly 5, 500 cents', () => {
      assert.deepEqual(amounts(rateUsage(MICRO, '12500', 'USD')), ['5', 500]);
    });

    it('rounds half a cent away from zero, once: 13 calls → 0.52¢ → 1¢, 12 calls → 0.48¢ → 0¢, 1 unit at 0.005 → 1¢', () => {
      assert.deepEqual(amounts(rateUsage(MICRO, '13', 'USD')), ['0.0052', 1]);
      assert.deepEqual(amounts(rateUsage(MICRO, '12', 'USD')), ['0.0048', 0]);
      assert.deepEqual(amounts(rateUsage(component({ model: 'per_unit', unitPrice: '0.005' }), '1', 'USD')), ['0.005', 1]);
      assert.deepEqual(amounts(rateUsage(component({ model: 'per_unit', unitPrice: '0.004999999999' }), '1', 'USD')), ['0.004999999999', 0]);
    });

    it('JPY has no minor digits: 493.8268 → ¥494, 0.5 → ¥1, 0.4996 → ¥0', () => {
      assert.deepEqual(amounts(rateUsage(MICRO, '1234567', 'JPY')), ['493.8268', 494]);
      assert.deepEqual(amounts(rateUsage(MICRO, '1250', 'JPY')), ['0.5', 1]);
      assert.deepEqual(amounts(rateUsage(MICRO, '1249', 'JPY')), ['0.4996', 0]);
    });

    it('KWD has three: 493.8268 → 493827 fils, 0.0005 → 1 fils, 0.0004 → 0 fils, 1.54320875 → 1543 fils', () => {
      assert.deepEqual(amounts(rateUsage(MICRO, '1234567', 'KWD')), ['493.8268', 493827]);
      const tenth = component({ model: 'per_unit', unitPrice: '0.0001' });
      assert.deepEqual(amounts(rateUsage(tenth, '5', 'KWD')), ['0.0005', 1]);
      assert.deepEqual(amounts(rateUsage(tenth, '4', 'KWD')), ['0.0004', 0]);
      assert.deepEqual(amounts(rateUsage(component({ model: 'per_unit', unitPrice: '0.00000125' }), '1234567', 'KWD')), ['1.54320875', 1543]);
    });

    it('prices fractional quantities exactly: 2.5 GB-hours at 0.013 → 0.0325 → 3 cents', () => {
      assert.deepEqual(amounts(rateUsage(component({ model: 'per_unit', unitPrice: '0.013' }), '2.5', 'USD')), ['0.0325', 3]);
    });

    it('keeps a price with 12 decimals exact: 1 unit at 0.000000000001 is 0.000000000001', () => {
      const r = rateUsage(component({ model: 'per_unit', unitPrice: '0.000000000001' }), '1', 'USD');
      assert.deepEqual(amounts(r), ['0.000000000001', 0]);
    });

    it('beyond 18 fractional digits (12-digit price × quantity with > 6 digits) the product rounds at 10^-18, half away from zero', () => {
      const pico = component({ model: 'per_unit', unitPrice: '0.000000000001' });
      assert.equal(rateUsage(pico, '0.0000005', 'USD').amountExact, '0.000000000000000001');
      assert.equal(rateUsage(pico, '0.0000004', 'USD').amountExact, '0');
    });

    it('reads the quantity canonically ("12500.000000000000" from a numeric column is 12500)', () => {
      const r = rateUsage(MICRO, '12500.000000000000', 'USD');
      assert.equal(r.quantity, '12500');
      assert.deepEqual(amounts(r), ['5', 500]);
    });

    it('rates zero usage at zero with an empty breakdown', () => {
      const r = rateUsage(MICRO, '0', 'USD');
      assert.deepEqual(amounts(r), ['0', 0]);
      assert.deepEqual(r.breakdown, []);
      assert.equal(r.unitPrice, '0.0004');
    });
  });

  describe('graduated and volume on the same tiers (≤1000 at 0.01, ≤10000 at 0.008, above at 0.005)', () => {
    it('12,000 units: graduated 10 + 72 + 10 = 92.00, volume all at 0.005 = 60.00', () => {
      const g = rateUsage(GRADUATED, '12000', 'USD');
      assert.deepEqual(amounts(g), ['92', 9200]);
      assert.equal(g.unitPrice, null);
      assert.deepEqual(g.breakdown, [
        { description: 'Tier 1: up to 1000', quantity: '1000', unitPrice: '0.01', amountExact: '10' },
        { description: 'Tier 2: over 1000 up to 10000', quantity: '9000', unitPrice: '0.008', amountExact: '72' },
        { description: 'Tier 3: over 10000', quantity: '2000', unitPrice: '0.005', amountExact: '10' },
      ]);
      const v = rateUsage(VOLUME, '12000', 'USD');
      assert.deepEqual(amounts(v), ['60', 6000]);
      assert.equal(v.unitPrice, '0.005');
      assert.deepEqual(v.breakdown, [{ description: 'All units at tier 3 (over 10000)', quantity: '12000', unitPrice: '0.005', amountExact: '60' }]);
    });

    it('bounds are inclusive: 1000 units stay in tier 1 for both models (10.00)', () => {
      const g = rateUsage(GRADUATED, '1000', 'USD');
      assert.deepEqual(amounts(g), ['10', 1000]);
      assert.equal(g.breakdown.length, 1);
      const v = rateUsage(VOLUME, '1000', 'USD');
      assert.deepEqual(amounts(v), ['10', 1000]);
      assert.equal(v.unitPrice, '0.01');
    });

    it('1001 units: graduated adds one unit at 0.008 (10.008 → 1001¢), volume reprices all at 0.008 (8.008 → 801¢)', () => {
      assert.deepEqual(amounts(rateUsage(GRADUATED, '1001', 'USD')), ['10.008', 1001]);
      assert.deepEqual(amounts(rateUsage(VOLUME, '1001', 'USD')), ['8.008', 801]);
    });

    it('10,000 units: graduated 82.00, volume 80.00', () => {
      assert.deepEqual(amounts(rateUsage(GRADUATED, '10000', 'USD')), ['82', 8200]);
      assert.deepEqual(amounts(rateUsage(VOLUME, '10000', 'USD')), ['80', 8000]);
    });

    it('a fractional total just over a bound is in the next tier: 1000.5 → graduated 10.004, volume 8.004', () => {
      const g = rateUsage(GRADUATED, '1000.5', 'USD');
      assert.deepEqual(amounts(g), ['10.004', 1000]);
      assert.deepEqual(g.breakdown.map((b) => b.quantity), ['1000', '0.5']);
      assert.deepEqual(amounts(rateUsage(VOLUME, '1000.5', 'USD')), ['8.004', 800]);
    });

    it('volume is not monotone: 10,000 units cost more than 12,000 (graduated is)', () => {
      assert.ok(rateUsage(VOLUME, '10000', 'USD').amountMinor > rateUsage(VOLUME, '12000', 'USD').amountMinor);
      assert.ok(rateUsage(GRADUATED, '10000', 'USD').amountMinor < rateUsage(GRADUATED, '12000', 'USD').amountMinor);
    });

    it('in JPY and KWD: 12,345 units graduated 10 + 72 + 11.725 = 93.725 → ¥94, 93725 fils', () => {
      assert.deepEqual(amounts(rateUsage(GRADUATED, '12345', 'JPY')), ['93.725', 94]);
      assert.deepEqual(amounts(rateUsage(GRADUATED, '12345', 'KWD')), ['93.725', 93725]);
      assert.deepEqual(amounts(rateUsage(VOLUME, '12345', 'JPY')), ['61.725', 62]);
    });

    it('adds the flat fee of every tier reached (graduated) or of the one tier applied (volume)', () => {
      const g = component({ model: 'graduated', tiers: FEE_TIERS });
      const v = component({ model: 'volume', tiers: FEE_TIERS });
      assert.deepEqual(amounts(rateUsage(g, '0', 'USD')), ['0', 0]);
      assert.deepEqual(amounts(rateUsage(g, '50', 'USD')), ['5', 500]);
      assert.deepEqual(amounts(rateUsage(g, '100', 'USD')), ['5', 500]);
      assert.deepEqual(amounts(rateUsage(g, '101', 'USD')), ['15.1', 1510]);
      const r = rateUsage(g, '300', 'USD');
      assert.deepEqual(amounts(r), ['35', 3500]);
      assert.deepEqual(r.breakdown, [
        { description: 'Tier 1: up to 100', quantity: '100', unitPrice: '0', flatFee: '5', amountExact: '5' },
        { description: 'Tier 2: over 100', quantity: '200', unitPrice: '0.1', flatFee: '10', amountExact: '30' },
      ]);
      assert.deepEqual(amounts(rateUsage(v, '50', 'USD')), ['5', 500]);
      assert.deepEqual(amounts(rateUsage(v, '300', 'USD')), ['40', 4000]);
    });

    it('volume with nothing billable is 0: no flat fee for an unused tier', () => {
      const r = rateUsage(component({ model: 'volume', tiers: FEE_TIERS }), '0', 'USD');
      assert.deepEqual(amounts(r), ['0', 0]);
      assert.deepEqual(r.breakdown, []);
      assert.equal(r.unitPrice, '0', 'the first tier is the one a first unit would fall into');
    });

    it('computes per tier, not per unit: 10^15 units rate instantly', () => {
      const r = rateUsage(GRADUATED, '1000000000000000', 'USD');
      assert.deepEqual(amounts(r), ['5000000000032', 500000000003200]);
      assert.deepEqual(amounts(rateUsage(PACKAGE, '1000000000000000', 'USD')), ['5000000000000', 500000000000000]);
    });
  });

  describe('package', () => {
    it('bills partial blocks as whole blocks: 2500 SMS in blocks of 1000 at 5.00 → 3 blocks, 15.00', () => {
      const r = rateUsage(PACKAGE, '2500', 'USD');
      assert.deepEqual(amounts(r), ['15', 1500]);
      assert.equal(r.unitPrice, null);
      assert.deepEqual(r.breakdown, [{ description: '3 packages of 1000', quantity: '3', unitPrice: '5', amountExact: '15' }]);
    });

    it('2000 → 2 blocks (10.00), 1 → 1 block (5.00), 0 → nothing, 1000.5 → 2 blocks', () => {
      assert.deepEqual(amounts(rateUsage(PACKAGE, '2000', 'USD')), ['10', 1000]);
      const one = rateUsage(PACKAGE, '1', 'USD');
      assert.deepEqual(amounts(one), ['5', 500]);
      assert.equal(one.breakdown[0]?.description, '1 package of 1000');
      const none = rateUsage(PACKAGE, '0', 'USD');
      assert.deepEqual(amounts(none), ['0', 0]);
      assert.deepEqual(none.breakdown, []);
      assert.deepEqual(amounts(rateUsage(PACKAGE, '1000.5', 'USD')), ['10', 1000]);
    });

    it('prices blocks at sub-minor precision and rounds once: 7 blocks at 0.125 = 0.875 → 88¢, ¥1, 875 fils', () => {
      const c = component({ model: 'package', packageSize: 100, packagePrice: '0.125' });
      assert.deepEqual(amounts(rateUsage(c, '650', 'USD')), ['0.875', 88]);
      assert.deepEqual(amounts(rateUsage(c, '650', 'JPY')), ['0.875', 1]);
      assert.deepEqual(amounts(rateUsage(c, '650', 'KWD')), ['0.875', 875]);
    });
  });

  describe('included allowance', () => {
    it('is subtracted first: 12,500 calls with 10,000 included → 2,500 billable → 1.00', () => {
      const c = component({ model: 'per_unit', unitPrice: '0.0004', includedQuantity: 10000 });
      const r = rateUsage(c, '12500', 'USD');
      assert.equal(r.quantity, '12500');
      assert.equal(r.includedQuantity, '10000');
      assert.equal(r.billableQuantity, '2500');
      assert.deepEqual(amounts(r), ['1', 100]);
    });

    it('usage within the allowance bills nothing', () => {
      const c = component({ model: 'per_unit', unitPrice: '0.0004', includedQuantity: 10000 });
      const r = rateUsage(c, '8000', 'USD');
      assert.equal(r.billableQuantity, '0');
      assert.deepEqual(amounts(r), ['0', 0]);
    });

    it('tiers apply to the billable quantity: 1500 with 500 included stays in tier 1 (10.00, not 14.00)', () => {
      const c = component({ model: 'graduated', tiers: TIERS, includedQuantity: 500 });
      const r = rateUsage(c, '1500', 'USD');
      assert.deepEqual(amounts(r), ['10', 1000]);
      assert.deepEqual(r.breakdown.map((b) => b.quantity), ['1000']);
    });

    it('packages count billable units: 1100 SMS with 100 included → 1 block', () => {
      const c = component({ metric: 'sms', model: 'package', packageSize: 1000, packagePrice: '5', includedQuantity: 100 });
      assert.deepEqual(amounts(rateUsage(c, '1100', 'USD')), ['5', 500]);
      assert.deepEqual(amounts(rateUsage(c, '1100.5', 'USD')), ['10', 1000]);
    });
  });

  describe('minimum and maximum charges', () => {
    const withMinimum = component({ model: 'per_unit', unitPrice: '0.0004', minimumCharge: '20' });
    const withMaximum = component({ model: 'per_unit', unitPrice: '0.0004', maximumCharge: '100' });

    it('tops up to the minimum: 12,500 calls = 5.00 → 20.00 with a +15 adjustment', () => {
      const r = rateUsage(withMinimum, '12500', 'USD');
      assert.deepEqual(amounts(r), ['20', 2000]);
      assert.deepEqual(r.adjustments, [{ reason: 'minimum', amountExact: '15' }]);
      assert.equal(r.breakdown[0]?.amountExact, '5', 'the breakdown still shows what the usage cost');
    });

    it('the minimum is a commitment: it applies with no usage at all', () => {
      const r = rateUsage(withMinimum, '0', 'USD');
      assert.deepEqual(amounts(r), ['20', 2000]);
      assert.deepEqual(r.adjustments, [{ reason: 'minimum', amountExact: '20' }]);
    });

    it('caps at the maximum: 1,234,567 calls = 493.8268 → 100.00 with a −393.8268 adjustment', () => {
      const r = rateUsage(withMaximum, '1234567', 'USD');
      assert.deepEqual(amounts(r), ['100', 10000]);
      assert.deepEqual(r.adjustments, [{ reason: 'maximum', amountExact: '-393.8268' }]);
    });

    it('leaves an amount between the two alone', () => {
      const c = component({ model: 'per_unit', unitPrice: '0.0004', minimumCharge: '1', maximumCharge: '100' });
      const r = rateUsage(c, '12500', 'USD');
      assert.deepEqual(amounts(r), ['5', 500]);
      assert.deepEqual(r.adjustments, []);
    });

    it('clamps at full precision before the one rounding: a 0.125 minimum is 13¢, a 0.994 maximum is 99¢', () => {
      const min = component({ model: 'per_unit', unitPrice: '0.0004', minimumCharge: '0.125' });
      assert.deepEqual(amounts(rateUsage(min, '1', 'USD')), ['0.125', 13]);
      const max = component({ model: 'per_unit', unitPrice: '0.0004', maximumCharge: '0.994' });
      assert.deepEqual(amounts(rateUsage(max, '1234567', 'USD')), ['0.994', 99]);
    });
  });

  describe('rateLines', () => {
    it('rates every component; a metric without usage is rated at 0 and still owes its minimum', () => {
      const plan = [
        MICRO,
        GRADUATED,
        component({ metric: 'seats', model: 'per_unit', unitPrice: '10', minimumCharge: '30' }),
      ];
      const lines = rateLines(plan, { api_calls: '12500', storage_gb: '12000', unpriced_metric: '99' }, 'USD');
      assert.deepEqual(
        lines.map((l) => [l.metric, l.quantity, l.amountMinor]),
        [
          ['api_calls', '12500', 500],
          ['storage_gb', '12000', 9200],
          ['seats', '0', 3000],
        ],
      );
    });

    it('does not mistake Object.prototype members for totals (a metric named "constructor")', () => {
      const [line] = rateLines([component({ metric: 'constructor', model: 'per_unit', unitPrice: '1' })], {}, 'USD');
      assert.equal(line?.quantity, '0');
      assert.equal(line?.amountMinor, 0);
    });

    it('returns nothing for a plan without usage components', () => {
      assert.deepEqual(rateLines([], { api_calls: '5' }, 'USD'), []);
    });
  });

  describe('bad input', () => {
    it('rejects a negative quantity, naming the metric', () => {
      assert.throws(() => rateUsage(MICRO, '-1', 'USD'), rangeError(/api_calls quantity must not be negative/));
    });

    for (const bad of ['1e3', '', '12,500', ' 5', '0.0000000000000000001']) {
      it(`rejects the quantity ${JSON.stringify(bad)} with a RangeError naming it`, () => {
        assert.throws(() => rateUsage(MICRO, bad, 'USD'), (err: unknown) => rangeError(/api_calls quantity/)(err) && (err as Error).message.includes(JSON.stringify(bad)));
      });
    }

    it('rejects a malformed currency code', () => {
      assert.throws(() => rateUsage(MICRO, '1', 'usd'), rangeError(/not an ISO 4217 currency code/));
    });

    it('rejects a component that skipped catalog validation, naming the field', () => {
      const raw = (c: Record<string, unknown>) => ({ metric: 'm', includedQuantity: 0, ...c }) as UsageComponent;
      assert.throws(() => rateUsage(raw({ model: 'per_unit' }), '1', 'USD'), rangeError(/m\.unitPrice is required for model "per_unit"/));
      assert.throws(() => rateUsage(raw({ model: 'graduated', tiers: [] }), '1', 'USD'), rangeError(/m\.tiers must not be empty/));
      assert.throws(() => rateUsage(raw({ model: 'volume', tiers: [{ upTo: 10, unitPrice: '1' }] }), '1', 'USD'), rangeError(/m\.tiers\.0\.upTo: the last tier must be unbounded/));
      assert.throws(
        () => rateUsage(raw({ model: 'graduated', tiers: [{ upTo: 10, unitPrice: '1' }, { upTo: 5, unitPrice: '1' }, { upTo: null, unitPrice: '1' }] }), '1', 'USD'),
        rangeError(/m\.tiers\.1\.upTo must be an integer above 10/),
      );
      assert.throws(() => rateUsage(raw({ model: 'per_unit', unitPrice: '-1' }), '1', 'USD'), rangeError(/m\.unitPrice must not be negative/));
      assert.throws(() => rateUsage(raw({ model: 'per_unit', unitPrice: '1e-4' }), '1', 'USD'), rangeError(/m\.unitPrice: .*"1e-4"/));
      assert.throws(() => rateUsage(raw({ model: 'package', packageSize: 0, packagePrice: '1' }), '1', 'USD'), rangeError(/m\.packageSize must be a positive integer/));
      assert.throws(() => rateUsage(raw({ model: 'per_unit', unitPrice: '1', minimumCharge: '5', maximumCharge: '4' }), '1', 'USD'), rangeError(/m\.maximumCharge must be at least minimumCharge/));
      assert.throws(() => rateUsage(raw({ model: 'per_unit', unitPrice: '1', includedQuantity: -1 }), '1', 'USD'), rangeError(/m\.includedQuantity must be a non-negative integer/));
      assert.throws(() => rateUsage(raw({ model: 'flat' as 'per_unit' }), '1', 'USD'), rangeError(/unknown pricing model "flat"/));
    });
  });

  describe('properties', () => {
    it('amountMinor is roundToMinor(amountExact): the one rounding', () => {
      fc.assert(
        fc.property(anyComponentArb, quantityArb, currencyArb, (c, q, cur) => {
          const r = rateUsage(c, q, cur);
          assert.equal(r.amountMinor, Number(roundToMinor(r.amountExact, cur).minor));
        }),
        { numRuns: 500 },
      );
    });

    it('amountMinor is within half a minor unit of amountExact', () => {
      fc.assert(
        fc.property(anyComponentArb, quantityArb, currencyArb, (c, q, cur) => {
          const r = rateUsage(c, q, cur);
          const exp = minorExponent(cur);
          const billed = Decimal.fromUnits(BigInt(r.amountMinor) * 10n ** BigInt(18 - exp));
          const halfMinor = Decimal.fromUnits(5n * 10n ** BigInt(17 - exp));
          assert.ok(!billed.sub(d(r.amountExact)).abs().gt(halfMinor), `${r.amountMinor} vs ${r.amountExact} ${cur}`);
        }),
        { numRuns: 500 },
      );
    });

    it('the line adds up: every row is quantity × unitPrice + flatFee, and rows plus adjustments are amountExact', () => {
      fc.assert(
        fc.property(anyComponentArb, quantityArb, (c, q) => {
          const r = rateUsage(c, q, 'USD');
          let sum = Decimal.ZERO;
          for (const row of r.breakdown) {
            const expected = d(row.quantity).mul(d(row.unitPrice)).add(row.flatFee ? d(row.flatFee) : Decimal.ZERO);
            assert.equal(row.amountExact, expected.toString());
            sum = sum.add(d(row.amountExact));
          }
          for (const a of r.adjustments) sum = sum.add(d(a.amountExact));
          assert.equal(sum.toString(), r.amountExact);
        }),
        { numRuns: 500 },
      );
    });

    it('billable is max(0, quantity − included), and graduated rows split exactly the billable quantity', () => {
      fc.assert(
        fc.property(withExtras(graduatedArb), quantityArb, (c, q) => {
          const r = rateUsage(c, q, 'USD');
          assert.equal(r.billableQuantity, Decimal.max(Decimal.ZERO, d(q).sub(Decimal.fromInteger(c.includedQuantity))).toString());
          const split = r.breakdown.reduce((s, row) => s.add(d(row.quantity)), Decimal.ZERO);
          assert.equal(split.toString(), r.billableQuantity);
        }),
        { numRuns: 300 },
      );
    });

    it('a set minimum and maximum bound amountExact', () => {
      fc.assert(
        fc.property(anyComponentArb, quantityArb, (c, q) => {
          const r = rateUsage(c, q, 'USD');
          if (c.minimumCharge !== undefined) assert.ok(!d(r.amountExact).lt(d(c.minimumCharge)));
          if (c.maximumCharge !== undefined) assert.ok(!d(r.amountExact).gt(d(c.maximumCharge)));
          assert.ok(r.adjustments.length <= 1);
        }),
        { numRuns: 300 },
      );
    });

    it('graduated is monotone non-decreasing in quantity', () => {
      fc.assert(
        fc.property(withExtras(graduatedArb), quantityArb, quantityArb, (c, a, b) => {
          const [lo, hi] = d(a).gt(d(b)) ? [b, a] : [a, b];
          assert.ok(!d(rateUsage(c, lo, 'USD').amountExact).gt(d(rateUsage(c, hi, 'USD').amountExact)));
          assert.ok(rateUsage(c, lo, 'USD').amountMinor <= rateUsage(c, hi, 'USD').amountMinor);
        }),
        { numRuns: 500 },
      );
    });

    it('graduated prices each unit by the tier it falls into (checked against a unit-by-unit count)', () => {
      fc.assert(
        fc.property(
          fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 4 }).chain((bounds) =>
            fc.tuple(...[...bounds.sort((x, y) => x - y), null].map((upTo) => fc.record({ upTo: fc.constant(upTo), unitPrice: priceArb, flatFee: priceArb }))),
          ),
          fc.nat({ max: 100 }),
          (tiers, q) => {
            let expected = Decimal.ZERO;
            const reached = new Set<number>();
            for (let unit = 1; unit <= q; unit++) {
              const i = tiers.findIndex((t) => t.upTo === null || unit <= t.upTo);
              expected = expected.add(d(tiers[i]!.unitPrice));
              reached.add(i);
            }
            for (const i of reached) expected = expected.add(d(tiers[i]!.flatFee));
            assert.equal(rateUsage(component({ model: 'graduated', tiers }), String(q), 'USD').amountExact, expected.toString());
          },
        ),
        { numRuns: 300 },
      );
    });

    it('labels a single unbounded tier plainly', () => {
      const tiers = [{ upTo: null, unitPrice: '2' }];
      assert.equal(rateUsage(component({ model: 'graduated', tiers }), '3', 'USD').breakdown[0]?.description, 'Tier 1: all units');
      assert.equal(rateUsage(component({ model: 'volume', tiers }), '3', 'USD').breakdown[0]?.description, 'All units at tier 1');
    });

    it('graduated with one unbounded tier is per_unit', () => {
      fc.assert(
        fc.property(priceArb, quantityArb, includedArb, (price, q, includedQuantity) => {
          const g = rateUsage(component({ model: 'graduated', tiers: [{ upTo: null, unitPrice: price }], includedQuantity }), q, 'USD');
          const p = rateUsage(component({ model: 'per_unit', unitPrice: price, includedQuantity }), q, 'USD');
          assert.deepEqual(amounts(g), amounts(p));
        }),
      );
    });

    it('per_unit is additive at full precision: rating a split of the events equals rating them together', () => {
      fc.assert(
        fc.property(perUnitArb.map((m) => component(m)), quantityArb, quantityArb, (c, q1, q2) => {
          const together = rateUsage(c, d(q1).add(d(q2)).toString(), 'USD').amountExact;
          const apart = d(rateUsage(c, q1, 'USD').amountExact).add(d(rateUsage(c, q2, 'USD').amountExact));
          assert.equal(together, apart.toString());
        }),
        { numRuns: 500 },
      );
    });

    it('package bills like the next whole block: rating q equals rating q rounded up to a multiple of the size', () => {
      fc.assert(
        fc.property(withExtras(packageArb), quantityArb, (c, q) => {
          const billable = Decimal.max(Decimal.ZERO, d(q).sub(Decimal.fromInteger(c.includedQuantity)));
          const size = Decimal.fromInteger(c.packageSize!);
          const roundedUp = Decimal.fromInteger(billable.divToInteger(size, 'ceil')).mul(size).add(Decimal.fromInteger(c.includedQuantity));
          const q2 = billable.isZero() ? q : roundedUp.toString();
          assert.equal(rateUsage(c, q, 'USD').amountExact, rateUsage(c, q2, 'USD').amountExact);
        }),
        { numRuns: 300 },
      );
    });
  });

  describe('where a split is NOT the same as the total (why rating takes the period total)', () => {
    const sumOf = (c: UsageComponent, ...qs: string[]) => qs.reduce((s, q) => s.add(d(rateUsage(c, q, 'USD').amountExact)), Decimal.ZERO).toString();

    it('package: 400 + 400 SMS rated apart are two blocks (10.00), together one block (5.00)', () => {
      assert.equal(sumOf(PACKAGE, '400', '400'), '10');
      assert.equal(rateUsage(PACKAGE, '800', 'USD').amountExact, '5');
    });

    it('volume: 1000 + 1000 units rated apart are 20.00 at 0.01, together 16.00 at 0.008', () => {
      assert.equal(sumOf(VOLUME, '1000', '1000'), '20');
      assert.equal(rateUsage(VOLUME, '2000', 'USD').amountExact, '16');
    });

    it('graduated: 1000 + 1000 units rated apart are 20.00, together 18.00 (each split restarts tier 1)', () => {
      assert.equal(sumOf(GRADUATED, '1000', '1000'), '20');
      assert.equal(rateUsage(GRADUATED, '2000', 'USD').amountExact, '18');
    });

    it('per_unit is additive only before rounding: 13 + 13 calls are 1¢ + 1¢ apart, 1¢ together (0.0104)', () => {
      assert.equal(rateUsage(MICRO, '13', 'USD').amountMinor + rateUsage(MICRO, '13', 'USD').amountMinor, 2);
      assert.deepEqual(amounts(rateUsage(MICRO, '26', 'USD')), ['0.0104', 1]);
    });

    it('an allowance or a minimum breaks additivity too', () => {
      const allowance = component({ model: 'per_unit', unitPrice: '1', includedQuantity: 10 });
      assert.equal(sumOf(allowance, '10', '10'), '0');
      assert.equal(rateUsage(allowance, '20', 'USD').amountExact, '10');
      const minimum = component({ model: 'per_unit', unitPrice: '1', minimumCharge: '5' });
      assert.equal(sumOf(minimum, '1', '1'), '10');
      assert.equal(rateUsage(minimum, '2', 'USD').amountExact, '5');
    });
  });
});
