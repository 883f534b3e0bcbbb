/**
 * Per-brand policies, managed over `/v1/policies/:kind`. Each kind has a schema and a default
 * used until the brand sets its own. Durations are ISO-8601; sandbox brands may use minutes.
 */
import { z } from 'zod';
import { DECIMAL, PLAN_CODE } from './catalog';
import { parseIsoDuration } from './period';

const Duration = z.string().refine(
  (s) => {
    try {
      parseIsoDuration(s);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'an ISO-8601 duration such as P3D, P1M or PT5M' },
);
const Amount = z.string().regex(DECIMAL, 'a decimal amount such as "0.25"');
const Code = z.string().min(1).max(64);

/** One offer rule: when a buyer matches `when`, the brand may offer `plan` with `discount`. */
export const OfferRule = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'rule ids are lowercase letters, digits, "_" and "-"'),
  description: z.string().max(500).optional(),
  when: z
    .strictObject({
      segment: z.array(Code).min(1).optional(),
      country: z.array(z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2 country codes such as "DE"')).min(1).optional(),
      source: z.array(Code).min(1).optional(),
      campaign: z.array(Code).min(1).optional(),
      minVolume: z.number().int().min(0).optional(),
      maxVolume: z.number().int().min(0).optional(),
    })
    .default({}),
  plan: z.string().regex(PLAN_CODE, 'a plan code'),
  /** Percentage off the recurring fee, e.g. 20 for 20 %. */
  discountPercent: z.number().min(0).max(100).default(0),
  /** How many billing periods the discount lasts; omitted means for as long as the subscription. */
  discountPeriods: z.number().int().positive().optional(),
});
export type OfferRule = z.infer<typeof OfferRule>;

export const OffersPolicy = z.strictObject({
  rules: z.array(OfferRule).max(500).superRefine((rules, ctx) => {
    const seen = new Set<string>();
    rules.forEach((r, i) => {
      if (seen.has(r.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate rule id "${r.id}"` });
      seen.add(r.id);
      if (r.when.minVolume !== undefined && r.when.maxVolume !== undefined && r.when.minVolume > r.when.maxVolume) {
        ctx.addIssue({ code: 'custom', path: [i, 'when', 'maxVolume'], message: 'must be at least minVolume' });
      }
    });
  }),
  /** How many periods of revenue the engine weighs when comparing offers. */
  horizonPeriods: z.number().int().min(1).max(120).default(12),
});

export const AcquisitionPolicy = z.strictObject({
  nurture: z.array(z.strictObject({ after: Duration, template: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/) })).max(20),
  leadExpiresAfter: Duration,
});

export const DunningPolicy = z.strictObject({
  retrySchedule: z.array(Duration).max(20),
  gracePeriod: Duration,
  writeOffAfter: Duration,
});

export const DisputesPolicy = z.strictObject({
  /** What handling one dispute costs (e.g. 30 s of an agent); below it disputes are credited automatically. */
  handlingCost: Amount,
  maxAutoCreditsPerPeriod: Amount,
  operatorDecisionDeadline: Duration,
  defaultDecision: z.enum(['accept', 'reject']),
});

export const CommunicationPolicy = z.strictObject({
  quietHours: z
    .strictObject({
      start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
      end: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
    })
    .nullable(),
  defaultTimeZone: z.string().min(1).max(64),
  optOutAllowed: z.array(z.enum(['marketing', 'usage', 'nurture', 'upgrade_offers'])),
});

export const POLICY_SCHEMAS = {
  offers: OffersPolicy,
  acquisition: AcquisitionPolicy,
  dunning: DunningPolicy,
  disputes: DisputesPolicy,
  communication: CommunicationPolicy,
} as const;

export type PolicyKind = keyof typeof POLICY_SCHEMAS;
export const POLICY_KINDS = Object.keys(POLICY_SCHEMAS) as PolicyKind[];
export type Policy<K extends PolicyKind> = z.infer<(typeof POLICY_SCHEMAS)[K]>;

export const DEFAULT_POLICIES: { [K in PolicyKind]: Policy<K> } = {
  offers: { rules: [], horizonPeriods: 12 },
  acquisition: { nurture: [{ after: 'P1D', template: 'nurture-welcome' }, { after: 'P3D', template: 'nurture-reminder' }], leadExpiresAfter: 'P30D' },
  dunning: { retrySchedule: ['P1D', 'P3D', 'P5D', 'P7D'], gracePeriod: 'P7D', writeOffAfter: 'P30D' },
  disputes: { handlingCost: '0.50', maxAutoCreditsPerPeriod: '5.00', operatorDecisionDeadline: 'P7D', defaultDecision: 'accept' },
  communication: { quietHours: { start: '21:00', end: '08:00' }, defaultTimeZone: 'UTC', optOutAllowed: ['marketing', 'usage', 'nurture', 'upgrade_offers'] },
};
