/**
 * domain/decimal.ts: exact bigint decimals — parsing, the canonical string, exact sums, products
 * exact up to 18 digits and rounded half away from zero beyond, explicit-rounding division.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Decimal, type Rounding, SCALE } from '../../domain/decimal';

const ONE = 10n ** 18n;
const d = (s: string) => Decimal.parse(s);

/** Any Decimal, far beyond the float-exact range. */
const decimalArb = fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(Decimal.fromUnits);
/**
 * A Decimal with at most `digits` fractional digits and a bounded magnitude: three of them with
 * ≤ 6 digits multiply exactly within 18 digits.
 */
function shortDecimalArb(digits: number, maxWhole = 10n ** 9n) {
  const step = 10n ** BigInt(SCALE - digits);
  const bound = maxWhole * 10n ** BigInt(digits);
  return fc.bigInt({ min: -bound, max: bound }).map((n) => Decimal.fromUnits(n * step));
}
const CANONICAL = /^-?(0|[1-9]\d*)(\.\d*[1-9])?$/;

function rangeErrorNaming(input: string) {
  return (err: unknown) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${String(err)}`);
    assert.ok(err.message.includes(JSON.stringify(input)), `message should name ${JSON.stringify(input)}: ${err.message}`);
    return true;
  };
}

describe('domain/decimal', () => {
  describe('parse and toString', () => {
    const cases: Array<[string, string]> = [
      ['123', '123'],
      ['0.0004', '0.0004'],
      ['-1.5', '-1.5'],
      ['1.500', '1.5'],
      ['0', '0'],
      ['-0', '0'],
      ['-0.000', '0'],
      ['007.10', '7.1'],
      ['0.000000000000000001', '0.000000000000000001'],
      ['-123456789012345678901234567890.123456789012345678', '-123456789012345678901234567890.123456789012345678'],
      ['1234567', '1234567'],
    ];
    for (const [input, canonical] of cases) {
      it(`reads ${JSON.stringify(input)} as ${canonical}`, () => {
        assert.equal(d(input).toString(), canonical);
      });
    }

    it('keeps the exact value: "1.5" is 1.5 × 10^18 units', () => {
      assert.equal(d('1.5').units, 1_500_000_000_000_000_000n);
      assert.equal(d('-0.0004').units, -400_000_000_000_000n);
    });

    for (const bad of ['1e5', '1E-3', '4e-4', '', ' 1', '1 ', '+1', '.5', '1.', '1.2.3', 'abc', '0x10', '1,000', '1_000', 'Infinity', 'NaN', '--1', '-', '١٢']) {
      it(`rejects ${JSON.stringify(bad)} with a RangeError naming the input`, () => {
        assert.throws(() => d(bad), rangeErrorNaming(bad));
      });
    }

    it('rejects more than 18 fractional digits rather than rounding them', () => {
      const input = '0.1234567890123456789';
      assert.throws(() => d(input), (err: unknown) => rangeErrorNaming(input)(err) && /19 fractional digits; at most 18/.test((err as Error).message));
      assert.throws(() => d('1.0000000000000000000'), RangeError);
    });

    it('rejects a value that is not a string', () => {
      assert.throws(() => Decimal.parse(1.5 as unknown as string), /not a decimal string: 1.5/);
      assert.throws(() => Decimal.parse(undefined as unknown as string), RangeError);
      assert.throws(() => Decimal.parse({} as unknown as string), /a value of type object/);
    });

    it('serializes to JSON as its canonical string', () => {
      assert.equal(JSON.stringify({ price: d('0.00040') }), '{"price":"0.0004"}');
    });

    it('builds integers exactly and refuses unsafe numbers', () => {
      assert.equal(Decimal.fromInteger(1_234_567).toString(), '1234567');
      assert.equal(Decimal.fromInteger(10n ** 30n).toString(), `1${'0'.repeat(30)}`);
      assert.throws(() => Decimal.fromInteger(1.5), RangeError);
      assert.throws(() => Decimal.fromInteger(2 ** 53), RangeError);
    });

    it('round-trips: parse(toString(x)) equals x', () => {
      fc.assert(
        fc.property(decimalArb, (x) => {
          assert.equal(d(x.toString()).units, x.units);
        }),
        { numRuns: 1000 },
      );
    });

    it('prints canonically: no trailing zeros, no "-0", nothing but digits, "-" and "."', () => {
      fc.assert(
        fc.property(decimalArb, (x) => {
          assert.match(x.toString(), CANONICAL);
        }),
        { numRuns: 1000 },
      );
    });

    it('reads any padding of a value (leading zeros, trailing fractional zeros) as the same value', () => {
      fc.assert(
        fc.property(shortDecimalArb(12), fc.nat({ max: 3 }), fc.nat({ max: 6 }), (x, lead, trail) => {
          const s = x.toString();
          const negative = s.startsWith('-');
          const body = negative ? s.slice(1) : s;
          const [whole = '', frac = ''] = body.split('.');
          const padded = `${negative ? '-' : ''}${'0'.repeat(lead)}${whole}.${frac}${'0'.repeat(trail)}`;
          fc.pre(padded.split('.')[1]!.length >= 1);
          assert.equal(d(padded).units, x.units);
        }),
      );
    });
  });

  describe('add, sub, compare', () => {
    it('adds and subtracts exactly where floats cannot', () => {
      assert.equal(d('0.1').add(d('0.2')).toString(), '0.3');
      assert.equal(d('0.3').sub(d('0.1')).toString(), '0.2');
      assert.equal(d('9007199254740993').add(d('0.000000000000000001')).toString(), '9007199254740993.000000000000000001');
      assert.equal(d('1').sub(d('1.0004')).toString(), '-0.0004');
    });

    it('sub undoes add, and add is commutative and associative with 0 as identity', () => {
      fc.assert(
        fc.property(decimalArb, decimalArb, decimalArb, (a, b, c) => {
          assert.ok(a.add(b).sub(b).equals(a));
          assert.ok(a.sub(b).add(b).equals(a));
          assert.ok(a.add(b).equals(b.add(a)));
          assert.ok(a.add(b).add(c).equals(a.add(b.add(c))));
          assert.ok(a.add(Decimal.ZERO).equals(a));
          assert.ok(a.sub(a).isZero());
          assert.ok(a.neg().neg().equals(a));
        }),
        { numRuns: 500 },
      );
    });

    it('orders values consistently with the sign of their difference', () => {
      fc.assert(
        fc.property(decimalArb, decimalArb, (a, b) => {
          const diff = a.sub(b);
          const sign = diff.isZero() ? 0 : diff.isNegative() ? -1 : 1;
          assert.equal(a.compare(b), sign);
          assert.equal(b.compare(a), 0 - sign);
          assert.equal(a.lt(b), sign < 0);
          assert.equal(a.gt(b), sign > 0);
          assert.equal(a.equals(b), sign === 0);
          assert.equal(diff.isPositive(), sign > 0);
        }),
        { numRuns: 500 },
      );
    });

    it('orders by value, not by string: "10" > "9.99", "-2" < "-1.5", "0.0004" > "0.0003"', () => {
      assert.equal(d('10').compare(d('9.99')), 1);
      assert.equal(d('-2').compare(d('-1.5')), -1);
      assert.equal(d('0.0004').compare(d('0.0003')), 1);
      assert.equal(d('1.50').compare(d('1.5')), 0);
    });

    it('min and max pick by value and agree with compare', () => {
      assert.equal(Decimal.min(d('3'), d('-1.5'), d('2')).toString(), '-1.5');
      assert.equal(Decimal.max(d('3'), d('-1.5'), d('3.0000001')).toString(), '3.0000001');
      assert.equal(Decimal.max(d('7')).toString(), '7');
      fc.assert(
        fc.property(decimalArb, decimalArb, (a, b) => {
          const lo = Decimal.min(a, b);
          const hi = Decimal.max(a, b);
          assert.ok(lo.compare(hi) <= 0);
          assert.ok(lo.add(hi).equals(a.add(b)));
        }),
      );
    });

    it('reports zero, sign and integrality', () => {
      assert.ok(d('-0.0').isZero());
      assert.ok(!d('0').isNegative() && !d('0').isPositive());
      assert.ok(d('-0.000000000000000001').isNegative());
      assert.ok(d('12.000').isInteger());
      assert.ok(!d('12.5').isInteger());
      assert.equal(d('-3.25').abs().toString(), '3.25');
    });
  });

  describe('mul', () => {
    it('multiplies a micro-price by a quantity exactly', () => {
      assert.equal(d('1234567').mul(d('0.0004')).toString(), '493.8268');
      assert.equal(d('0.0004').mul(d('12500')).toString(), '5');
      assert.equal(d('0.000000000001').mul(d('0.000001')).toString(), '0.000000000000000001');
      assert.equal(d('-1.5').mul(d('1.5')).toString(), '-2.25');
      assert.equal(d('123456789012.123456789012').mul(d('999999999999.999999')).toString(), '123456789012123456665555.210987876543210988');
    });

    it('rounds a product beyond 18 fractional digits half away from zero', () => {
      const tiny = d('0.000000000000000001');
      assert.equal(tiny.mul(d('0.5')).toString(), '0.000000000000000001');
      assert.equal(tiny.neg().mul(d('0.5')).toString(), '-0.000000000000000001');
      assert.equal(tiny.mul(d('0.4999999')).toString(), '0');
      assert.equal(tiny.neg().mul(d('0.4999999')).toString(), '0');
      assert.equal(d('0.000000001').mul(d('0.0000000015')).toString(), '0.000000000000000002');
      assert.equal(d('0.000000001').mul(d('0.0000000025')).toString(), '0.000000000000000003');
    });

    it('is commutative always, with 1 as identity and 0 as absorbing element', () => {
      fc.assert(
        fc.property(decimalArb, decimalArb, (a, b) => {
          assert.ok(a.mul(b).equals(b.mul(a)));
          assert.ok(a.mul(Decimal.ONE).equals(a));
          assert.ok(a.mul(Decimal.ZERO).isZero());
          assert.ok(a.neg().mul(b).equals(a.mul(b).neg()));
        }),
        { numRuns: 500 },
      );
    });

    it('is associative and distributes over add where products fit 18 digits', () => {
      fc.assert(
        fc.property(shortDecimalArb(6), shortDecimalArb(6), shortDecimalArb(6), (a, b, c) => {
          assert.ok(a.mul(b).mul(c).equals(a.mul(b.mul(c))));
          assert.ok(a.mul(b.add(c)).equals(a.mul(b).add(a.mul(c))));
        }),
        { numRuns: 500 },
      );
    });

    it('is exact for any catalog price (≤ 12 digits) times a quantity with ≤ 6 digits', () => {
      fc.assert(
        fc.property(shortDecimalArb(12, 10n ** 12n), shortDecimalArb(6, 10n ** 15n), (price, quantity) => {
          assert.equal(price.mul(quantity).units * ONE, price.units * quantity.units);
        }),
        { numRuns: 500 },
      );
    });

    it('lands within half of 10^-18 of the true product, ties away from zero', () => {
      fc.assert(
        fc.property(decimalArb, decimalArb, (a, b) => {
          const exact = a.units * b.units; // in 10^-36
          const err = a.mul(b).units * ONE - exact; // rounded minus true, in 10^-36
          assert.ok(2n * (err < 0n ? -err : err) <= ONE);
          if (2n * (err < 0n ? -err : err) === ONE) assert.ok(exact > 0n ? err > 0n : err < 0n, 'a tie rounds away from zero');
        }),
        { numRuns: 1000 },
      );
    });
  });

  describe('division with explicit rounding', () => {
    const roundings: Rounding[] = ['floor', 'ceil', 'trunc', 'half_away_from_zero'];

    it('counts whole blocks with a ceiling: 2500 ÷ 1000 → 3, 2000 ÷ 1000 → 2, 0.5 ÷ 1000 → 1, 0 → 0', () => {
      const k = Decimal.fromInteger(1000);
      assert.equal(d('2500').divToInteger(k, 'ceil'), 3n);
      assert.equal(d('2000').divToInteger(k, 'ceil'), 2n);
      assert.equal(d('0.5').divToInteger(k, 'ceil'), 1n);
      assert.equal(d('0').divToInteger(k, 'ceil'), 0n);
      assert.equal(d('1000.000000000000000001').divToInteger(k, 'ceil'), 2n);
    });

    it('rounds each mode as named, for both signs', () => {
      const table: Array<[string, Record<Rounding, bigint>]> = [
        ['2.5', { floor: 2n, ceil: 3n, trunc: 2n, half_away_from_zero: 3n }],
        ['-2.5', { floor: -3n, ceil: -2n, trunc: -2n, half_away_from_zero: -3n }],
        ['2.4', { floor: 2n, ceil: 3n, trunc: 2n, half_away_from_zero: 2n }],
        ['-2.6', { floor: -3n, ceil: -2n, trunc: -2n, half_away_from_zero: -3n }],
        ['7', { floor: 7n, ceil: 7n, trunc: 7n, half_away_from_zero: 7n }],
      ];
      for (const [value, expected] of table) {
        for (const mode of roundings) assert.equal(d(value).divToInteger(Decimal.ONE, mode), expected[mode], `${value} ${mode}`);
      }
      assert.equal(d('5').divToInteger(Decimal.fromInteger(-2), 'floor'), -3n);
    });

    it('divides by an integer at 18 digits with the given rounding', () => {
      assert.equal(d('1').divInteger(3, 'half_away_from_zero').toString(), '0.333333333333333333');
      assert.equal(d('2').divInteger(3, 'half_away_from_zero').toString(), '0.666666666666666667');
      assert.equal(d('2').divInteger(3, 'floor').toString(), '0.666666666666666666');
      assert.equal(d('-1').divInteger(3, 'ceil').toString(), '-0.333333333333333333');
      assert.equal(d('10').divInteger(4n, 'trunc').toString(), '2.5');
    });

    it('refuses division by zero', () => {
      assert.throws(() => d('1').divInteger(0, 'floor'), /division by zero/);
      assert.throws(() => d('1').divToInteger(Decimal.ZERO, 'ceil'), /division by zero/);
    });

    it('brackets the true quotient: floor ≤ a/b ≤ ceil, one apart unless exact', () => {
      const nonZero = decimalArb.filter((x) => !x.isZero());
      fc.assert(
        fc.property(decimalArb, nonZero, (a, b) => {
          const fl = a.divToInteger(b, 'floor');
          const ce = a.divToInteger(b, 'ceil');
          const bAbs = b.abs().units;
          const aSigned = b.isNegative() ? -a.units : a.units; // a/b = aSigned/|b|
          assert.ok(fl * bAbs <= aSigned && aSigned <= ce * bAbs);
          assert.equal(ce - fl, aSigned % bAbs === 0n ? 0n : 1n);
          const tr = a.divToInteger(b, 'trunc');
          assert.equal(tr, aSigned < 0n ? ce : fl);
          const h = a.divToInteger(b, 'half_away_from_zero');
          assert.ok(h === fl || h === ce);
        }),
        { numRuns: 500 },
      );
    });
  });
});
