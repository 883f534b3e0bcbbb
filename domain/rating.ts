/**
 * Usage rating: a period's total quantity of one metric, priced by its catalog component, at
 * full precision (domain/decimal) and then rounded ONCE to minor units by `roundToMinor`
 * (domain/money). Pure code, safe to import from workflows.
 *
 * Semantics, in order:
 * 1. Included allowance first: billable = max(0, quantity − includedQuantity). Tiers and packages
 *    apply to the billable quantity (the allowance is not a free first tier of the tier table).
 * 2. The model prices the billable quantity. Tier bounds are cumulative and inclusive: tier i
 *    holds the quantity in (upTo[i−1], upTo[i]], with upTo[−1] = 0 and null = unbounded.
 *    Quantities may be fractional (1000.5 is above a bound of 1000).
 *    - per_unit:  billable × unitPrice.
 *    - graduated: each part of the quantity at the price of the tier it falls into, plus the
 *                 flatFee of every tier reached (a tier is reached when billable > its lower
 *                 bound). Computed per tier, never per unit.
 *    - volume:    all billable units at the unitPrice of the one tier the total falls into, plus
 *                 that tier's flatFee; a billable quantity of zero costs 0 (no flat fee).
 *    - package:   ceil(billable ÷ packageSize) × packagePrice — a partial block is a whole block,
 *                 and a fractional quantity is divided exactly before the ceiling.
 * 3. minimumCharge / maximumCharge clamp the full-precision amount. The minimum is a commitment:
 *    it applies whenever it is set, also to a period without any usage (so a metric absent from
 *    the period still bills its minimum). Each clamp is reported as an adjustment carrying the
 *    signed difference (positive for a minimum top-up, negative for a maximum cap).
 * 4. amountMinor = roundToMinor(amountExact, currency): half away from zero, once per line.
 *
 * Additivity: per_unit (without allowance or clamps) is additive at full precision — rating a
 * split of the events equals rating them together. graduated, volume and package are not, and
 * neither is anything with an allowance or a clamp: they price the period total, which is why
 * rating takes the total, never a sum of per-event ratings.
 *
 * Exactness: a catalog price has ≤ 12 fractional digits, so price × quantity is exact when the
 * quantity has ≤ 6; a quantity with more digits is still accepted (up to 18), and a product
 * beyond 18 fractional digits is rounded half away from zero at 10^-18 (see domain/decimal).
 */
import type { UsageComponent } from './catalog';
import { Decimal } from './decimal';
import { minorExponent, roundToMinor } from './money';

export interface RatedUsageBreakdown {
  description: string;
  /** Units in this tier; for the package model, the number of packages. */
  quantity: string;
  /** Price per unit of `quantity` (per package for the package model). */
  unitPrice: string;
  flatFee?: string;
  /** quantity × unitPrice + flatFee, at full precision. */
  amountExact: string;
}

export interface RatedUsageAdjustment {
  reason: 'minimum' | 'maximum';
  /** Signed full-precision difference added to the priced amount. */
  amountExact: string;
}

export interface RatedUsage {
  metric: string;
  model: UsageComponent['model'];
  /** The period total as rated, canonical decimal. */
  quantity: string;
  /** The component's allowance (not capped by the quantity). */
  includedQuantity: string;
  /** max(0, quantity − includedQuantity). */
  billableQuantity: string;
  /** Sum of the breakdown and the adjustments, at full precision. */
  amountExact: string;
  /** amountExact rounded once to the currency's minor unit. */
  amountMinor: number;
  /** per_unit: its price; volume: the price of the tier applied; graduated and package: null. */
  unitPrice: string | null;
  /** One row per tier reached (or the packages billed); empty when nothing is billable. */
  breakdown: RatedUsageBreakdown[];
  adjustments: RatedUsageAdjustment[];
}

interface PricedUsage {
  amount: Decimal;
  unitPrice: Decimal | null;
  breakdown: RatedUsageBreakdown[];
}

/** Rates one metric's period total. Throws a RangeError naming the bad input. */
export function rateUsage(component: UsageComponent, quantity: string, currency: string): RatedUsage {
  minorExponent(currency);
  const metric = component.metric;
  const total = parseQuantity(quantity, metric);
  const allowance = component.includedQuantity ?? 0;
  if (!Number.isSafeInteger(allowance) || allowance < 0) throw new RangeError(`${metric}.includedQuantity must be a non-negative integer, got ${allowance}`);
  const included = Decimal.fromInteger(allowance);
  const billable = Decimal.max(total.sub(included), Decimal.ZERO);

  const priced = price(component, billable);

  const minimum = component.minimumCharge === undefined ? undefined : parsePrice(component.minimumCharge, metric, 'minimumCharge');
  const maximum = component.maximumCharge === undefined ? undefined : parsePrice(component.maximumCharge, metric, 'maximumCharge');
  if (minimum && maximum && minimum.gt(maximum)) throw new RangeError(`${metric}.maximumCharge must be at least minimumCharge`);
  let amount = priced.amount;
  const adjustments: RatedUsageAdjustment[] = [];
  if (maximum && amount.gt(maximum)) {
    adjustments.push({ reason: 'maximum', amountExact: maximum.sub(amount).toString() });
    amount = maximum;
  }
  if (minimum && amount.lt(minimum)) {
    adjustments.push({ reason: 'minimum', amountExact: minimum.sub(amount).toString() });
    amount = minimum;
  }

  const amountExact = amount.toString();
  const minor = roundToMinor(amountExact, currency).minor;
  if (minor > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${metric}: amount ${amountExact} ${currency} exceeds the safe integer range of minor units`);
  return {
    metric,
    model: component.model,
    quantity: total.toString(),
    includedQuantity: included.toString(),
    billableQuantity: billable.toString(),
    amountExact,
    amountMinor: Number(minor),
    unitPrice: priced.unitPrice?.toString() ?? null,
    breakdown: priced.breakdown,
    adjustments,
  };
}

/**
 * Rates every component of a plan against the period's totals per metric; a metric without a
 * total is rated at quantity "0" (its minimum still applies). Totals of metrics the plan does
 * not price are ignored.
 */
export function rateLines(components: readonly UsageComponent[], totals: Readonly<Record<string, string>>, currency: string): RatedUsage[] {
  return components.map((c) => rateUsage(c, Object.hasOwn(totals, c.metric) ? (totals[c.metric] as string) : '0', currency));
}

function price(component: UsageComponent, billable: Decimal): PricedUsage {
  const metric = component.metric;
  switch (component.model) {
    case 'per_unit': {
      const unitPrice = parsePrice(required(component, 'unitPrice'), metric, 'unitPrice');
      const amount = billable.mul(unitPrice);
      const breakdown = billable.isZero()
        ? []
        : [{ description: 'Per unit', quantity: billable.toString(), unitPrice: unitPrice.toString(), amountExact: amount.toString() }];
      return { amount, unitPrice, breakdown };
    }
    case 'graduated':
      return graduated(parseTiers(component), billable);
    case 'volume':
      return volume(parseTiers(component), billable);
    case 'package': {
      const size = required(component, 'packageSize');
      if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`${metric}.packageSize must be a positive integer, got ${size}`);
      const packagePrice = parsePrice(required(component, 'packagePrice'), metric, 'packagePrice');
      const packages = billable.divToInteger(Decimal.fromInteger(size), 'ceil');
      const amount = Decimal.fromInteger(packages).mul(packagePrice);
      const breakdown = billable.isZero()
        ? []
        : [
            {
              description: `${packages} package${packages === 1n ? '' : 's'} of ${size}`,
              quantity: packages.toString(),
              unitPrice: packagePrice.toString(),
              amountExact: amount.toString(),
            },
          ];
      return { amount, unitPrice: null, breakdown };
    }
    default:
      throw new RangeError(`${metric}.model: unknown pricing model ${JSON.stringify((component as { model: unknown }).model)}`);
  }
}

interface ParsedTier {
  /** Exclusive lower bound (the previous tier's upTo, 0 for the first). */
  from: Decimal;
  /** Inclusive upper bound; null when unbounded. */
  upTo: Decimal | null;
  unitPrice: Decimal;
  flatFee: Decimal | null;
  /** 1-based, as invoices show it. */
  number: number;
  /** "up to 1000", "over 1000 up to 10000", "over 10000"; null for a single unbounded tier. */
  range: string | null;
}

function graduated(tiers: ParsedTier[], billable: Decimal): PricedUsage {
  let amount = Decimal.ZERO;
  const breakdown: RatedUsageBreakdown[] = [];
  for (const tier of tiers) {
    if (!billable.gt(tier.from)) break;
    const top = tier.upTo === null ? billable : Decimal.min(billable, tier.upTo);
    const row = tierRow(tier, top.sub(tier.from), `Tier ${tier.number}: ${tier.range ?? 'all units'}`);
    amount = amount.add(row.amount);
    breakdown.push(row.breakdown);
  }
  return { amount, unitPrice: null, breakdown };
}

function volume(tiers: ParsedTier[], billable: Decimal): PricedUsage {
  // The last tier is unbounded, so some tier always holds the total.
  const tier = tiers.find((t) => t.upTo === null || !billable.gt(t.upTo)) as ParsedTier;
  if (billable.isZero()) return { amount: Decimal.ZERO, unitPrice: tier.unitPrice, breakdown: [] };
  const row = tierRow(tier, billable, `All units at tier ${tier.number}${tier.range ? ` (${tier.range})` : ''}`);
  return { amount: row.amount, unitPrice: tier.unitPrice, breakdown: [row.breakdown] };
}

function tierRow(tier: ParsedTier, quantity: Decimal, description: string): { amount: Decimal; breakdown: RatedUsageBreakdown } {
  const usage = quantity.mul(tier.unitPrice);
  const amount = tier.flatFee ? usage.add(tier.flatFee) : usage;
  const breakdown: RatedUsageBreakdown = { description, quantity: quantity.toString(), unitPrice: tier.unitPrice.toString(), amountExact: amount.toString() };
  if (tier.flatFee) breakdown.flatFee = tier.flatFee.toString();
  return { amount, breakdown };
}

/** The tier table, checked as the catalog checks it: ascending positive bounds, the last unbounded. */
function parseTiers(component: UsageComponent): ParsedTier[] {
  const metric = component.metric;
  const tiers = required(component, 'tiers');
  if (tiers.length === 0) throw new RangeError(`${metric}.tiers must not be empty`);
  let from = Decimal.ZERO;
  let previousUpTo = 0;
  return tiers.map((t, i) => {
    const last = i === tiers.length - 1;
    if (last !== (t.upTo === null)) throw new RangeError(`${metric}.tiers.${i}.upTo: ${last ? 'the last tier must be unbounded (null)' : 'only the last tier may be unbounded'}`);
    if (t.upTo !== null && (!Number.isSafeInteger(t.upTo) || t.upTo <= previousUpTo)) {
      throw new RangeError(`${metric}.tiers.${i}.upTo must be an integer above ${previousUpTo}, got ${t.upTo}`);
    }
    const upTo = t.upTo === null ? null : Decimal.fromInteger(t.upTo);
    const lower = i === 0 ? null : `over ${previousUpTo}`;
    const upper = t.upTo === null ? null : `up to ${t.upTo}`;
    const range = lower && upper ? `${lower} ${upper}` : (lower ?? upper);
    const tier: ParsedTier = {
      from,
      upTo,
      unitPrice: parsePrice(t.unitPrice, metric, `tiers.${i}.unitPrice`),
      flatFee: t.flatFee === undefined ? null : parsePrice(t.flatFee, metric, `tiers.${i}.flatFee`),
      number: i + 1,
      range,
    };
    if (upTo !== null) {
      from = upTo;
      previousUpTo = t.upTo as number;
    }
    return tier;
  });
}

function required<K extends 'unitPrice' | 'tiers' | 'packageSize' | 'packagePrice'>(component: UsageComponent, field: K): NonNullable<UsageComponent[K]> {
  const value = component[field];
  if (value === undefined || value === null) throw new RangeError(`${component.metric}.${field} is required for model "${component.model}"`);
  return value as NonNullable<UsageComponent[K]>;
}

function parseQuantity(quantity: string, metric: string): Decimal {
  const q = parseField(quantity, `${metric} quantity`);
  if (q.isNegative()) throw new RangeError(`${metric} quantity must not be negative, got "${quantity}"`);
  return q;
}

function parsePrice(text: string, metric: string, field: string): Decimal {
  const p = parseField(text, `${metric}.${field}`);
  if (p.isNegative()) throw new RangeError(`${metric}.${field} must not be negative, got "${text}"`);
  return p;
}

function parseField(text: string, name: string): Decimal {
  try {
    return Decimal.parse(text);
  } catch (err) {
    throw new RangeError(`${name}: ${(err as Error).message}`);
  }
}
