/**
 * The plan catalog: what a brand sells. Plans are versioned; a change is a new version and
 * subscriptions keep the version they were sold. Schemas here validate API input and stored rows.
 */
import { z } from 'zod';
import { parseIsoDuration } from './period';

export const PLAN_CODE = /^[a-z0-9][a-z0-9_-]{0,39}$/;
export const KEY_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
/** A non-negative decimal with up to 12 fractional digits: unit prices below one cent are exact. */
export const DECIMAL = /^\d{1,12}(\.\d{1,12})?$/;

export const Entitlements = z.strictObject({
  features: z.array(z.string().regex(KEY_NAME, 'feature names are lowercase letters, digits, "_", "-", "."')).max(200).default([]),
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
  });
export type UsageComponent = z.infer<typeof UsageComponent>;

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
