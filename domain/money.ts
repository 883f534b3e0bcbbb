/**
 * Money in Closeloop: integers in minor units (bigint in storage) with an ISO 4217 code;
 * currency.js for arithmetic. The one rounding rule for turning a full-precision amount into
 * minor units is half-away-from-zero (`roundToMinor`), applied once per invoice line.
 */
import currency from 'currency.js';

/** Minor-unit exponent per currency; ISO 4217 says 2 unless listed. */
const EXPONENTS: Record<string, number> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
};

export const CURRENCY_CODE = /^[A-Z]{3}$/;

export function minorExponent(currencyCode: string): number {
  if (!CURRENCY_CODE.test(currencyCode)) throw new RangeError(`not an ISO 4217 currency code: "${currencyCode}"`);
  return EXPONENTS[currencyCode] ?? 2;
}

/** The wire shape of every amount in the API. */
export interface MoneyJson {
  amount: string;
  currency: string;
  minor: number;
}

export interface Money {
  /** Integer amount in minor units (cents for USD). */
  minor: bigint;
  currency: string;
}

export function money(minor: bigint | number, currencyCode: string): Money {
  const m = typeof minor === 'number' ? toBigIntStrict(minor) : minor;
  minorExponent(currencyCode);
  return { minor: m, currency: currencyCode };
}

function toBigIntStrict(n: number): bigint {
  if (!Number.isSafeInteger(n)) throw new RangeError(`minor units must be a safe integer, got ${n}`);
  return BigInt(n);
}

function asCurrency(m: Money): currency {
  // currency.js counts in float-backed integers; beyond 2^53 minor units it would lose cents.
  if (m.minor > BigInt(Number.MAX_SAFE_INTEGER) || m.minor < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError('amount exceeds the exactly representable range');
  }
  const precision = minorExponent(m.currency);
  return currency(m.minor.toString(), { precision, fromCents: true });
}

export function addMoney(a: Money, b: Money): Money {
  assertSameCurrency(a, b);
  const sum = asCurrency(a).add(asCurrency(b)).intValue;
  // The sum of two safe integers can leave the safe range, where the float result is inexact.
  if (!Number.isSafeInteger(sum)) throw new RangeError('amount exceeds the exactly representable range');
  return { minor: BigInt(sum), currency: a.currency };
}

export function assertSameCurrency(a: Money, b: Money): void {
  if (a.currency !== b.currency) throw new RangeError(`currency mismatch: ${a.currency} vs ${b.currency}`);
}

/** Decimal string of a minor-unit amount, exact for any bigint (no float on the way). */
export function formatMinor(minor: bigint, currencyCode: string): string {
  const exp = minorExponent(currencyCode);
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString().padStart(exp + 1, '0');
  const whole = digits.slice(0, digits.length - exp);
  const frac = exp > 0 ? `.${digits.slice(digits.length - exp)}` : '';
  return `${negative ? '-' : ''}${whole}${frac}`;
}

export function toMoneyJson(m: Money): MoneyJson {
  if (m.minor > BigInt(Number.MAX_SAFE_INTEGER) || m.minor < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError('amount exceeds the JSON-safe integer range');
  }
  return { amount: formatMinor(m.minor, m.currency), currency: m.currency, minor: Number(m.minor) };
}

/**
 * Parses a decimal string ("12.34") into minor units exactly. Rejects more decimals than the
 * currency has: an amount a client sends is never silently rounded.
 */
export function parseAmount(amount: string, currencyCode: string): Money {
  const exp = minorExponent(currencyCode);
  const match = /^(-)?(\d+)(?:\.(\d+))?$/.exec(amount);
  if (!match) throw new RangeError(`"${amount}" is not a decimal amount`);
  const [, sign, whole, frac = ''] = match;
  if (frac.length > exp) throw new RangeError(`${currencyCode} has ${exp} decimal places; "${amount}" has ${frac.length}`);
  const minor = BigInt(`${whole}${frac.padEnd(exp, '0')}`);
  return { minor: sign ? -minor : minor, currency: currencyCode };
}

/**
 * The rounding rule: a full-precision decimal amount (as a string, e.g. "0.00040" × 1234
 * computed exactly elsewhere) becomes minor units by rounding half away from zero.
 */
export function roundToMinor(decimal: string, currencyCode: string): Money {
  const exp = minorExponent(currencyCode);
  const match = /^(-)?(\d+)(?:\.(\d+))?$/.exec(decimal);
  if (!match) throw new RangeError(`"${decimal}" is not a decimal amount`);
  const [, sign, whole, frac = ''] = match;
  const kept = BigInt(`${whole}${frac.slice(0, exp).padEnd(exp, '0')}`);
  const firstDropped = frac.length > exp ? Number(frac[exp]) : 0;
  const minor = firstDropped >= 5 ? kept + 1n : kept;
  return { minor: sign && minor !== 0n ? -minor : minor, currency: currencyCode };
}
