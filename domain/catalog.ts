/**
 * The plan catalog: what a brand sells. Plans are versioned; a change is a new version and
 * subscriptions keep the version they were sold. Schemas here validate API input and stored rows.
 */
import { z } from 'zod';
import { minorExponent, parseAmount } from './money';
import { parseIsoDuration } from './period';

export const PLAN_CODE = /^[a-z0-9][a-z0-9_-]{0,39}$/;
export const KEY_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
/** A non-negative decimal with up to 12 fractional digits: unit prices below one cent are exact. */
export const DECIMAL = /^\d{1,12}(\.\d{1,12})?$/;

export const Entitlements = z.strictObject({
  features: z
    .array(z.string().regex(KEY_NAME, 'feature names are lowercase letters, digits, "_", "-", "."'))
    .max(200)
    .default([])
    .superRefine((features, ctx) => {
      features.forEach((f, i) => {
        if (features.indexOf(f) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `duplicate feature "${f}"` });
      });
    }),
  quotas: z.record(z.string().regex(KEY_NAME, 'quota names are lowercase letters, digits, "_", "-", "."'), z.number().int().min(0).max(1e15)).default({}),
});
export type Entitlements = z.infer<typeof Entitlements>;

const Price = z.string().regex(DECIMAL, 'a decimal string such as "0.0004" or "12.50"');

export const Tier = z.strictObject({
  /** Inclusive upper bound of the tier; null for the last, unbounded tier. */
  upTo: z.number().int().positive().nullable(),
  unitPrice: Price,
  flatFee: Price.optional(),
});

/** How one metric is priced. Rated in the rating issue; validated here so the catalog is sound. */
export const UsageComponent = z
  .strictObject({
    metric: z.string().regex(KEY_NAME, 'metric names are lowercase letters, digits, "_", "-", "."'),
    model: z.enum(['per_unit', 'graduated', 'volume', 'package']),
    unitPrice: Price.optional(),
    tiers: z.array(Tier).min(1).max(50).optional(),
    packageSize: z.number().int().positive().optional(),
    packagePrice: Price.optional(),
    includedQuantity: z.number().int().min(0).default(0),
    minimumCharge: Price.optional(),
    maximumCharge: Price.optional(),
  })
  .superRefine((c, ctx) => {
    const need = (field: 'unitPrice' | 'tiers' | 'packageSize' | 'packagePrice') => {
      if (c[field] === undefined) ctx.addIssue({ code: 'custom', path: [field], message: `required for model "${c.model}"` });
    };
    if (c.model === 'per_unit') need('unitPrice');
    if (c.model === 'graduated' || c.model === 'volume') {
      need('tiers');
      const tiers = c.tiers ?? [];
      tiers.forEach((t, i) => {
        const last = i === tiers.length - 1;
        if (last !== (t.upTo === null)) {
          ctx.addIssue({ code: 'custom', path: ['tiers', i, 'upTo'], message: last ? 'the last tier must be unbounded (null)' : 'only the last tier may be unbounded' });
        }
        const prev = tiers[i - 1]?.upTo;
        if (i > 0 && t.upTo !== null && prev != null && t.upTo <= prev) {
          ctx.addIssue({ code: 'custom', path: ['tiers', i, 'upTo'], message: 'tiers must ascend' });
        }
      });
    }
    if (c.model === 'package') {
      need('packageSize');
      need('packagePrice');
    }
    // A field the model ignores is a mistake in the catalog, not something to store silently.
    for (const field of ['unitPrice', 'tiers', 'packageSize', 'packagePrice'] as const) {
      if (c[field] !== undefined && !MODEL_FIELDS[c.model].includes(field)) {
        ctx.addIssue({ code: 'custom', path: [field], message: `not used by model "${c.model}"` });
      }
    }
    // Compared only when both are well-formed (a malformed one has its own issue already).
    const bounds = [c.minimumCharge, c.maximumCharge];
    if (bounds.every((b) => b !== undefined && DECIMAL.test(b)) && compareDecimal(c.minimumCharge!, c.maximumCharge!) > 0) {
      ctx.addIssue({ code: 'custom', path: ['maximumCharge'], message: 'must be at least minimumCharge' });
    }
  });
export type UsageComponent = z.infer<typeof UsageComponent>;

const MODEL_FIELDS: Record<UsageComponent['model'], readonly string[]> = {
  per_unit: ['unitPrice'],
  graduated: ['tiers'],
  volume: ['tiers'],
  package: ['packageSize', 'packagePrice'],
};

/** Compares two non-negative decimal strings exactly (no float). */
export function compareDecimal(a: string, b: string): number {
  const [aw = '', af = ''] = a.split('.');
  const [bw = '', bf = ''] = b.split('.');
  const scale = Math.max(af.length, bf.length);
  const x = BigInt(aw + af.padEnd(scale, '0'));
  const y = BigInt(bw + bf.padEnd(scale, '0'));
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Minimum billing period: sandbox brands may bill every minute so a lifecycle can be watched live. */
export const MIN_PERIOD_MS = { sandbox: 60_000, live: 86_400_000 } as const;

/** The shortest wall-clock length a duration can have (months counted as 28 days). */
export function minimumLengthMs(isoDuration: string): number {
  const d = parseIsoDuration(isoDuration);
  const days = d.years * 365 + d.months * 28 + d.weeks * 7 + d.days;
  return ((days * 24 + d.hours) * 60 + d.minutes) * 60_000 + d.seconds * 1000;
}

export function billingPeriodProblem(isoDuration: string, mode: 'sandbox' | 'live'): string | undefined {
  let length: number;
  try {
    length = minimumLengthMs(isoDuration);
  } catch (err) {
    return (err as Error).message;
  }
  if (length < MIN_PERIOD_MS[mode]) {
    return mode === 'sandbox' ? 'must be at least one minute (PT1M)' : 'must be at least one day (P1D) for a live brand';
  }
  if (length > 5 * 365 * 86_400_000) return 'must be at most five years';
  return undefined;
}

/** A problem with one field of an input, the field named relative to that input ("usage.0.tiers"). */
export interface FieldIssue {
  field: string;
  message: string;
}

const Amount = z.string().regex(DECIMAL, 'a non-negative decimal string such as "29.00"');

/**
 * A new plan version as operators describe it: amounts as decimal strings in the brand's
 * currency. Checks that need the brand (currency decimals, sandbox or live) are in `planDraft`.
 */
export const PlanInput = z.strictObject({
  code: z.string().regex(PLAN_CODE, 'lowercase letters, digits, "_" and "-", starting with a letter or digit (max 40)'),
  name: z.string().trim().min(1).max(200),
  recurringFee: Amount,
  costToServe: Amount.default('0'),
  billingPeriod: z.string().min(1).max(40),
  entitlements: Entitlements.default({ features: [], quotas: {} }),
  usage: z
    .array(UsageComponent)
    .max(50)
    .default([])
    .superRefine((components, ctx) => {
      const metrics = components.map((c) => c.metric);
      metrics.forEach((m, i) => {
        if (metrics.indexOf(m) !== i) ctx.addIssue({ code: 'custom', path: [i, 'metric'], message: `metric "${m}" is already priced by another component` });
      });
    }),
});
export type PlanInput = z.infer<typeof PlanInput>;

/** A plan version ready to store: amounts in minor units of the brand's currency. */
export type PlanDraft = Omit<Plan, 'brandId' | 'version' | 'createdAt'>;

export class PlanInputError extends Error {
  constructor(readonly issues: FieldIssue[]) {
    super(`invalid plan: ${issues.map((i) => `${i.field} ${i.message}`).join('; ')}`);
    this.name = 'PlanInputError';
  }
}

/**
 * Turns validated input into a storable version for a brand, or throws PlanInputError naming
 * every field that does not fit the brand: an amount with more decimals than its currency
 * has is rejected, never rounded.
 */
export function planDraft(input: PlanInput, brand: { currency: string; mode: 'sandbox' | 'live' }): PlanDraft {
  const issues: FieldIssue[] = [];
  const minor = (field: 'recurringFee' | 'costToServe'): number => {
    // DECIMAL allows 12 whole digits, so any accepted amount is a safe integer of minor units.
    const exp = minorExponent(brand.currency);
    if ((input[field].split('.')[1] ?? '').length > exp) {
      issues.push({ field, message: `${brand.currency} amounts have at most ${exp} decimal place${exp === 1 ? '' : 's'}` });
      return 0;
    }
    return Number(parseAmount(input[field], brand.currency).minor);
  };
  const recurringFeeMinor = minor('recurringFee');
  const costToServeMinor = minor('costToServe');
  const periodProblem = billingPeriodProblem(input.billingPeriod, brand.mode);
  if (periodProblem) issues.push({ field: 'billingPeriod', message: periodProblem });
  if (issues.length > 0) throw new PlanInputError(issues);
  return {
    code: input.code,
    name: input.name,
    currency: brand.currency,
    recurringFeeMinor,
    costToServeMinor,
    billingPeriod: input.billingPeriod,
    entitlements: input.entitlements,
    usageComponents: input.usage,
  };
}

export interface Plan {
  brandId: string;
  code: string;
  version: number;
  name: string;
  currency: string;
  recurringFeeMinor: number;
  costToServeMinor: number;
  billingPeriod: string;
  entitlements: Entitlements;
  usageComponents: UsageComponent[];
  createdAt: string;
}
