/**
 * domain/money.ts: exact decimal <-> minor-unit conversion, the half-away-from-zero rounding rule,
 * the API wire shape and same-currency addition.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  addMoney,
  formatMinor,
  minorExponent,
  money,
  parseAmount,
  roundToMinor,
  toMoneyJson,
} from '../../domain/money';

/** One currency per minor-unit exponent: 0, 2 and 3 decimals. */
const CURRENCIES = [
  { code: 'JPY', exp: 0 },
  { code: 'USD', exp: 2 },
  { code: 'KWD', exp: 3 },
] as const;
const currencyArb = fc.constantFrom(...CURRENCIES.map((c) => c.code));

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const safeBigIntArb = fc.bigInt({ min: MIN_SAFE, max: MAX_SAFE });
/** Far outside the float-exact range, to prove no float is involved. */
const hugeBigIntArb = fc.bigInt({ min: -(10n ** 60n), max: 10n ** 60n });

function rangeError(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('domain/money', () => {
  describe('minorExponent', () => {
    it('is 0 for zero-decimal currencies such as JPY and KRW', () => {
      assert.equal(minorExponent('JPY'), 0);
      assert.equal(minorExponent('KRW'), 0);
    });

    it('is 3 for three-decimal currencies such as KWD and BHD', () => {
      assert.equal(minorExponent('KWD'), 3);
      assert.equal(minorExponent('BHD'), 3);
    });

    it('is 2 for USD, EUR and any well-formed code that is not listed', () => {
      assert.equal(minorExponent('USD'), 2);
      assert.equal(minorExponent('EUR'), 2);
      assert.equal(minorExponent('XYZ'), 2);
    });

    for (const bad of ['usd', 'US', 'USDX', '', 'U5D', ' USD', 'USD ', '€UR']) {
      it(`rejects the malformed currency code ${JSON.stringify(bad)} with a RangeError`, () => {
        assert.throws(() => minorExponent(bad), rangeError(/not an ISO 4217 currency code/));
      });
    }
  });

  describe('money', () => {
    it('accepts a safe integer number and stores it as a bigint', () => {
      assert.deepEqual(money(1234, 'USD'), { minor: 1234n, currency: 'USD' });
    });

    it('accepts a bigint as is', () => {
      assert.deepEqual(money(-5n, 'KWD'), { minor: -5n, currency: 'KWD' });
    });

    it('rejects a fractional, non-finite or unsafe number of minor units', () => {
      for (const n of [1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1]) {
        assert.throws(() => money(n, 'USD'), rangeError(/safe integer/), String(n));
      }
    });

    it('rejects a malformed currency code', () => {
      assert.throws(() => money(1, 'usd'), RangeError);
    });
  });

  describe('formatMinor', () => {
    const cases: Array<[bigint, string, string]> = [
      [1234n, 'USD', '12.34'],
      [5n, 'USD', '0.05'],
      [-5n, 'USD', '-0.05'],
      [0n, 'USD', '0.00'],
      [100n, 'USD', '1.00'],
      [1234n, 'JPY', '1234'],
      [-1234n, 'JPY', '-1234'],
      [0n, 'JPY', '0'],
      [1n, 'KWD', '0.001'],
      [-1n, 'KWD', '-0.001'],
      [1234567n, 'KWD', '1234.567'],
      [0n, 'KWD', '0.000'],
    ];
    for (const [minor, code, expected] of cases) {
      it(`formats ${minor} ${code} minor units as "${expected}"`, () => {
        assert.equal(formatMinor(minor, code), expected);
      });
    }

    it('is exact for amounts far beyond 2^53 (no float on the way)', () => {
      assert.equal(formatMinor(123456789012345678901234567890n, 'USD'), '1234567890123456789012345678.90');
      assert.equal(formatMinor(-(2n ** 64n) - 1n, 'KWD'), '-18446744073709551.617');
    });

    it('always writes exactly the currency\'s number of decimals and a single leading digit group', () => {
      fc.assert(
        fc.property(hugeBigIntArb, fc.constantFrom(...CURRENCIES), (minor, { code, exp }) => {
          const text = formatMinor(minor, code);
          const shape = exp === 0 ? /^-?(0|[1-9]\d*)$/ : new RegExp(`^-?(0|[1-9]\\d*)\\.\\d{${exp}}$`);
          assert.match(text, shape);
          assert.equal(text.startsWith('-'), minor < 0n);
        }),
      );
    });

    it('rejects a malformed currency code', () => {
      assert.throws(() => formatMinor(1n, 'usd'), RangeError);
    });
  });

  describe('parseAmount', () => {
    const cases: Array<[string, string, bigint]> = [
      ['12.34', 'USD', 1234n],
      ['12.3', 'USD', 1230n],
      ['12', 'USD', 1200n],
      ['0.01', 'USD', 1n],
      ['-0.5', 'USD', -50n],
      ['1234', 'JPY', 1234n],
      ['-7', 'JPY', -7n],
      ['0.001', 'KWD', 1n],
      ['1.5', 'KWD', 1500n],
      ['-1234.567', 'KWD', -1234567n],
    ];
    for (const [text, code, minor] of cases) {
      it(`parses "${text}" ${code} as ${minor} minor units`, () => {
        assert.deepEqual(parseAmount(text, code), { minor, currency: code });
      });
    }

    it('parses "-0" and "-0.00" as zero', () => {
      assert.equal(parseAmount('-0', 'USD').minor, 0n);
      assert.equal(parseAmount('-0.00', 'USD').minor, 0n);
    });

    const tooPrecise: Array<[string, string, number]> = [
      ['1.5', 'JPY', 0],
      ['1.234', 'USD', 2],
      ['0.001', 'USD', 2],
      ['1.2345', 'KWD', 3],
      // Trailing zeros still count: the client sent more precision than the currency has.
      ['1.000', 'USD', 2],
    ];
    for (const [text, code, exp] of tooPrecise) {
      it(`rejects "${text}" ${code}: more than ${exp} decimals is never silently rounded`, () => {
        assert.throws(() => parseAmount(text, code), rangeError(new RegExp(`${code} has ${exp} decimal places`)));
      });
    }

    const notDecimal = ['', 'abc', '-', '.5', '5.', '1.2.3', '+1.00', '--1', ' 1.00', '1.00 ', '1,000.00', '1e3', '0x10', 'Infinity', 'NaN', '１２', '1_000'];
    for (const text of notDecimal) {
      it(`rejects the non-decimal string ${JSON.stringify(text)}`, () => {
        assert.throws(() => parseAmount(text, 'USD'), rangeError(/is not a decimal amount/));
      });
    }

    for (const code of ['usd', 'US', 'USDD', '', '1SD']) {
      it(`rejects the bad currency code ${JSON.stringify(code)} even for a valid amount`, () => {
        assert.throws(() => parseAmount('1.00', code), rangeError(/not an ISO 4217 currency code/));
      });
    }

    it('round-trips formatMinor exactly for every safe integer in 0-, 2- and 3-decimal currencies', () => {
      fc.assert(
        fc.property(fc.maxSafeInteger(), currencyArb, (n, code) => {
          const minor = BigInt(n);
          assert.deepEqual(parseAmount(formatMinor(minor, code), code), { minor, currency: code });
        }),
        { numRuns: 500 },
      );
    });

    it('round-trips formatMinor exactly for any bigint, however large', () => {
      fc.assert(
        fc.property(fc.oneof(fc.bigInt(), hugeBigIntArb), currencyArb, (minor, code) => {
          assert.equal(parseAmount(formatMinor(minor, code), code).minor, minor);
        }),
        { numRuns: 500 },
      );
    });

    it('round-trips the extremes of the safe range (16-digit JPY amounts included)', () => {
      for (const { code } of CURRENCIES) {
        for (const minor of [MAX_SAFE, MIN_SAFE, 10n ** 15n, -(10n ** 15n)]) {
          assert.equal(parseAmount(formatMinor(minor, code), code).minor, minor, `${minor} ${code}`);
        }
      }
    });
  });

  describe('toMoneyJson', () => {
    it('has exactly the shape {amount, currency, minor} with a decimal string and a number', () => {
      assert.deepStrictEqual(toMoneyJson(money(1234, 'USD')), { amount: '12.34', currency: 'USD', minor: 1234 });
      assert.deepStrictEqual(toMoneyJson(money(-1, 'KWD')), { amount: '-0.001', currency: 'KWD', minor: -1 });
      assert.deepStrictEqual(toMoneyJson(money(500, 'JPY')), { amount: '500', currency: 'JPY', minor: 500 });
    });

    it('agrees with formatMinor and parses back for any safe amount', () => {
      fc.assert(
        fc.property(safeBigIntArb, currencyArb, (minor, code) => {
          const json = toMoneyJson({ minor, currency: code });
          assert.deepStrictEqual(Object.keys(json).sort(), ['amount', 'currency', 'minor']);
          assert.equal(typeof json.minor, 'number');
          assert.equal(json.minor, Number(minor));
          assert.equal(json.amount, formatMinor(minor, code));
          assert.equal(parseAmount(json.amount, json.currency).minor, minor);
        }),
      );
    });

    it('accepts the safe-range boundaries', () => {
      assert.equal(toMoneyJson({ minor: MAX_SAFE, currency: 'USD' }).minor, Number.MAX_SAFE_INTEGER);
      assert.equal(toMoneyJson({ minor: MIN_SAFE, currency: 'USD' }).minor, Number.MIN_SAFE_INTEGER);
    });

    it('rejects amounts a JSON number cannot carry exactly', () => {
      assert.throws(() => toMoneyJson({ minor: MAX_SAFE + 1n, currency: 'USD' }), rangeError(/JSON-safe/));
      assert.throws(() => toMoneyJson({ minor: MIN_SAFE - 1n, currency: 'USD' }), rangeError(/JSON-safe/));
    });
  });

  describe('roundToMinor', () => {
    const cases: Array<[string, string, bigint]> = [
      ['0.005', 'USD', 1n],
      ['-0.005', 'USD', -1n],
      ['0.0049', 'USD', 0n],
      ['-0.0049', 'USD', 0n],
      ['1.234999', 'USD', 123n],
      ['1.235', 'USD', 124n],
      ['-1.235', 'USD', -124n],
      ['0.015', 'USD', 2n],
      ['0.025', 'USD', 3n],
      ['0.995', 'USD', 100n],
      ['-0.995', 'USD', -100n],
      ['12', 'USD', 1200n],
      ['12.3', 'USD', 1230n],
      ['0.5', 'JPY', 1n],
      ['-0.5', 'JPY', -1n],
      ['2.5', 'JPY', 3n],
      ['2.4999', 'JPY', 2n],
      ['0.0005', 'KWD', 1n],
      ['0.00049', 'KWD', 0n],
      ['-1.2345', 'KWD', -1235n],
      ['0.00040', 'USD', 0n],
    ];
    for (const [text, code, minor] of cases) {
      it(`rounds "${text}" ${code} half away from zero to ${minor} minor units`, () => {
        assert.deepEqual(roundToMinor(text, code), { minor, currency: code });
      });
    }

    it('never produces a negative zero sign for a negative amount that rounds to zero', () => {
      assert.equal(roundToMinor('-0.001', 'USD').minor, 0n);
      assert.equal(formatMinor(roundToMinor('-0.001', 'USD').minor, 'USD'), '0.00');
    });

    for (const text of ['', 'abc', '.5', '5.', '+1', '1e-3', ' 1', '1,5']) {
      it(`rejects the non-decimal string ${JSON.stringify(text)}`, () => {
        assert.throws(() => roundToMinor(text, 'USD'), rangeError(/is not a decimal amount/));
      });
    }

    it('rejects a bad currency code', () => {
      assert.throws(() => roundToMinor('1.00', 'usd'), RangeError);
    });

    it('is the identity on amounts that already have the currency\'s precision: roundToMinor(formatMinor(x)) = x', () => {
      fc.assert(
        fc.property(fc.oneof(safeBigIntArb, hugeBigIntArb), currencyArb, (minor, code) => {
          assert.equal(roundToMinor(formatMinor(minor, code), code).minor, minor);
        }),
        { numRuns: 500 },
      );
    });

    it('rounds any extra digits half away from zero: the first dropped digit decides', () => {
      const tailArb = fc.string({ unit: fc.constantFrom('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'), minLength: 1, maxLength: 12 });
      fc.assert(
        fc.property(safeBigIntArb, fc.constantFrom(...CURRENCIES), tailArb, (minor, { code, exp }, tail) => {
          const base = formatMinor(minor, code);
          const text = exp === 0 ? `${base}.${tail}` : `${base}${tail}`;
          const awayFromZero = Number(tail[0]) >= 5;
          // A "-0.00…" base still rounds away from zero on the negative side.
          const negative = text.startsWith('-');
          const magnitude = (minor < 0n ? -minor : minor) + (awayFromZero ? 1n : 0n);
          const expected = negative ? -magnitude : magnitude;
          assert.equal(roundToMinor(text, code).minor, expected, text);
        }),
        { numRuns: 500 },
      );
    });

    it('is symmetric: rounding -d gives minus the rounding of d', () => {
      const decimalArb = fc.tuple(fc.nat(), fc.string({ unit: fc.constantFrom('0', '4', '5', '9'), maxLength: 8 }));
      fc.assert(
        fc.property(decimalArb, currencyArb, ([whole, frac], code) => {
          const text = frac ? `${whole}.${frac}` : `${whole}`;
          assert.equal(roundToMinor(`-${text}`, code).minor, -roundToMinor(text, code).minor);
        }),
      );
    });
  });

  describe('addMoney', () => {
    it('adds two amounts in the same currency', () => {
      assert.deepEqual(addMoney(money(1234, 'USD'), money(66, 'USD')), { minor: 1300n, currency: 'USD' });
      assert.deepEqual(addMoney(money(-5, 'JPY'), money(3, 'JPY')), { minor: -2n, currency: 'JPY' });
      assert.deepEqual(addMoney(money(1, 'KWD'), money(999, 'KWD')), { minor: 1000n, currency: 'KWD' });
    });

    it('adds 0.1 + 0.2 exactly (no binary-float artefacts)', () => {
      const sum = addMoney(parseAmount('0.10', 'USD'), parseAmount('0.20', 'USD'));
      assert.equal(formatMinor(sum.minor, sum.currency), '0.30');
    });

    it('rejects a currency mismatch, naming both currencies', () => {
      assert.throws(() => addMoney(money(1, 'USD'), money(1, 'EUR')), rangeError(/currency mismatch: USD vs EUR/));
    });

    it('rejects a mismatch even when the two currencies have the same exponent and amount zero', () => {
      assert.throws(() => addMoney(money(0, 'USD'), money(0, 'CAD')), RangeError);
    });

    it('is exact, commutative and keeps the currency for any safe operands with a safe sum', () => {
      fc.assert(
        fc.property(safeBigIntArb, safeBigIntArb, currencyArb, (a, b, code) => {
          fc.pre(a + b <= MAX_SAFE && a + b >= MIN_SAFE);
          const sum = addMoney({ minor: a, currency: code }, { minor: b, currency: code });
          assert.deepEqual(sum, { minor: a + b, currency: code });
          assert.deepEqual(addMoney({ minor: b, currency: code }, { minor: a, currency: code }), sum);
        }),
        { numRuns: 500 },
      );
    });

    it('is exact at the top of the safe range', () => {
      assert.equal(addMoney({ minor: MAX_SAFE - 1n, currency: 'USD' }, { minor: 1n, currency: 'USD' }).minor, MAX_SAFE);
      assert.equal(addMoney({ minor: MIN_SAFE + 1n, currency: 'USD' }, { minor: -1n, currency: 'USD' }).minor, MIN_SAFE);
    });

    it('refuses a sum beyond the exactly representable range instead of returning a wrong amount', () => {
      assert.throws(() => addMoney({ minor: MAX_SAFE, currency: 'USD' }, { minor: 2n, currency: 'USD' }), rangeError(/exactly representable/));
      assert.throws(() => addMoney({ minor: MIN_SAFE, currency: 'USD' }, { minor: -2n, currency: 'USD' }), rangeError(/exactly representable/));
    });

    it('never returns an inexact sum: for any safe operands it either throws or is a + b', () => {
      fc.assert(
        fc.property(safeBigIntArb, safeBigIntArb, (a, b) => {
          let result: bigint | undefined;
          try {
            result = addMoney({ minor: a, currency: 'USD' }, { minor: b, currency: 'USD' }).minor;
          } catch (err) {
            assert.ok(err instanceof RangeError);
            assert.ok(a + b > MAX_SAFE || a + b < MIN_SAFE, `threw for an in-range sum ${a} + ${b}`);
            return;
          }
          assert.equal(result, a + b);
        }),
        { numRuns: 500 },
      );
    });

    it('rejects operands beyond the exactly representable range', () => {
      assert.throws(() => addMoney({ minor: MAX_SAFE + 1n, currency: 'USD' }, { minor: 0n, currency: 'USD' }), rangeError(/exactly representable/));
    });
  });
});
