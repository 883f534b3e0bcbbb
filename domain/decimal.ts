/**
 * Exact decimal arithmetic for amounts below the minor unit (unit prices such as 0.0004 USD,
 * fractional quantities): a `Decimal` is a bigint count of 10^-18, so there is no float anywhere
 * and no dependency. Pure code, safe to import from workflows.
 *
 * Exactness: `add`, `sub`, `neg`, `abs`, `compare` are always exact. `mul` is exact whenever the
 * true product has at most 18 fractional digits — a catalog price (≤ 12 digits) times a quantity
 * with ≤ 6 digits always does; otherwise the product is rounded half away from zero at the 18th
 * fractional digit (an error of at most 0.5 × 10^-18). Division is never implicit: `divInteger`
 * and `divToInteger` take an explicit rounding mode.
 */

/** Fractional digits every Decimal carries (and the most `parse` accepts). */
export const SCALE = 18;
const ONE_UNITS = 10n ** BigInt(SCALE);

/**
 * How a division (or a product beyond 18 digits) lands on a representable value:
 * toward −∞, toward +∞, toward zero, or to the nearest with ties away from zero.
 */
export type Rounding = 'floor' | 'ceil' | 'trunc' | 'half_away_from_zero';

const PLAIN_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

export class Decimal {
  static readonly ZERO = new Decimal(0n);
  static readonly ONE = new Decimal(ONE_UNITS);

  /** `units` counts 10^-18: Decimal "1.5" has units 1_500_000_000_000_000_000n. */
  private constructor(readonly units: bigint) {}

  /**
   * Parses a plain decimal string: optional "-", digits, optionally "." and 1–18 digits.
   * No exponent, no "+", no whitespace, no grouping. Throws a RangeError naming the input.
   */
  static parse(text: string): Decimal {
    if (typeof text !== 'string') throw new RangeError(`not a decimal string: ${quote(text)}`);
    const match = PLAIN_DECIMAL.exec(text);
    if (!match) {
      throw new RangeError(`not a plain decimal number: ${quote(text)} (digits with an optional "-" and "."; no exponent)`);
    }
    const [, sign, whole = '', frac = ''] = match;
    if (frac.length > SCALE) {
      throw new RangeError(`${quote(text)} has ${frac.length} fractional digits; at most ${SCALE} are exact`);
    }
    const units = BigInt(whole + frac.padEnd(SCALE, '0'));
    return new Decimal(sign ? -units : units);
  }

  /** The Decimal of `units` × 10^-18. */
  static fromUnits(units: bigint): Decimal {
    return new Decimal(units);
  }

  /** An integer as a Decimal; a number must be a safe integer. */
  static fromInteger(n: number | bigint): Decimal {
    if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new RangeError(`not a safe integer: ${n}`);
    return new Decimal(BigInt(n) * ONE_UNITS);
  }

  static min(first: Decimal, ...rest: Decimal[]): Decimal {
    return rest.reduce((m, d) => (d.units < m.units ? d : m), first);
  }

  static max(first: Decimal, ...rest: Decimal[]): Decimal {
    return rest.reduce((m, d) => (d.units > m.units ? d : m), first);
  }

  /** Canonical form: no trailing fractional zeros, no "+" and no "-0"; zero is "0". */
  toString(): string {
    const negative = this.units < 0n;
    const abs = negative ? -this.units : this.units;
    const whole = (abs / ONE_UNITS).toString();
    const fracUnits = abs % ONE_UNITS;
    const sign = negative ? '-' : '';
    if (fracUnits === 0n) return sign + whole;
    let frac = fracUnits.toString().padStart(SCALE, '0');
    let end = frac.length;
    while (frac.charCodeAt(end - 1) === 48 /* '0' */) end--;
    frac = frac.slice(0, end);
    return `${sign}${whole}.${frac}`;
  }

  /** JSON carries the canonical string, never a float. */
  toJSON(): string {
    return this.toString();
  }

  add(other: Decimal): Decimal {
    return new Decimal(this.units + other.units);
  }

  sub(other: Decimal): Decimal {
    return new Decimal(this.units - other.units);
  }

  neg(): Decimal {
    return new Decimal(-this.units);
  }

  abs(): Decimal {
    return this.units < 0n ? new Decimal(-this.units) : this;
  }

  /** The product; exact when it has ≤ 18 fractional digits, else rounded half away from zero. */
  mul(other: Decimal): Decimal {
    return new Decimal(divRound(this.units * other.units, ONE_UNITS, 'half_away_from_zero'));
  }

  /** This divided by a non-zero integer, landed on 18 fractional digits by `rounding`. */
  divInteger(divisor: number | bigint, rounding: Rounding): Decimal {
    if (typeof divisor === 'number' && !Number.isSafeInteger(divisor)) throw new RangeError(`not a safe integer divisor: ${divisor}`);
    return new Decimal(divRound(this.units, BigInt(divisor), rounding));
  }

  /** The integer quotient this ÷ divisor, rounded by `rounding` (e.g. 'ceil' to count whole blocks). */
  divToInteger(divisor: Decimal, rounding: Rounding): bigint {
    return divRound(this.units, divisor.units, rounding);
  }

  /** −1, 0 or 1 as this is less than, equal to or greater than `other`. */
  compare(other: Decimal): -1 | 0 | 1 {
    return this.units < other.units ? -1 : this.units > other.units ? 1 : 0;
  }

  equals(other: Decimal): boolean {
    return this.units === other.units;
  }

  lt(other: Decimal): boolean {
    return this.units < other.units;
  }

  gt(other: Decimal): boolean {
    return this.units > other.units;
  }

  isZero(): boolean {
    return this.units === 0n;
  }

  isNegative(): boolean {
    return this.units < 0n;
  }

  isPositive(): boolean {
    return this.units > 0n;
  }

  isInteger(): boolean {
    return this.units % ONE_UNITS === 0n;
  }
}

/** numerator ÷ divisor on integers, rounded by `rounding`. */
function divRound(numerator: bigint, divisor: bigint, rounding: Rounding): bigint {
  if (divisor === 0n) throw new RangeError('division by zero');
  if (divisor < 0n) {
    numerator = -numerator;
    divisor = -divisor;
  }
  const q = numerator / divisor; // truncates toward zero
  const r = numerator % divisor; // carries the sign of the numerator
  if (r === 0n) return q;
  switch (rounding) {
    case 'trunc':
      return q;
    case 'floor':
      return r < 0n ? q - 1n : q;
    case 'ceil':
      return r > 0n ? q + 1n : q;
    case 'half_away_from_zero': {
      const twice = 2n * (r < 0n ? -r : r);
      if (twice < divisor) return q;
      return r < 0n ? q - 1n : q + 1n;
    }
    default:
      throw new RangeError(`unknown rounding mode: ${quote(rounding)}`);
  }
}

/** The input as it appeared, shortened so a huge input cannot flood a log line. */
function quote(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value);
  else if (value === null || ['number', 'bigint', 'boolean', 'undefined'].includes(typeof value)) text = String(value);
  else text = `a value of type ${typeof value}`;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
