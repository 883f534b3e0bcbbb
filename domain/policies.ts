/**
 * Per-brand policies, managed over `/v1/policies/:kind`. Each kind has a schema and a default
 * used until the brand sets its own. Durations are ISO-8601; sandbox brands may use minutes.
 */
import { z } from 'zod';
import { DECIMAL, FieldIssue, MIN_PERIOD_MS, minimumLengthMs, PLAN_CODE } from './catalog';
import { isValidTimeZone } from './communication';
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
  /** Abuse guard: what one customer may be credited automatically per billing period, in total… */
  maxAutoCreditsPerPeriod: Amount,
  /** …and how many disputes; beyond either cap a dispute goes to evidence and an operator. */
  maxAutoCreditCountPerPeriod: z.number().int().min(0).max(1000).default(10),
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
  defaultTimeZone: z.string().min(1).max(64).refine(isValidTimeZone, 'an IANA time zone such as "Europe/Berlin"'),
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
  disputes: { handlingCost: '0.50', maxAutoCreditsPerPeriod: '5.00', maxAutoCreditCountPerPeriod: 10, operatorDecisionDeadline: 'P7D', defaultDecision: 'accept' },
  communication: { quietHours: { start: '21:00', end: '08:00' }, defaultTimeZone: 'UTC', optOutAllowed: ['marketing', 'usage', 'nurture', 'upgrade_offers'] },
};

/** Every duration a policy document holds, with the field that holds it ("nurture.0.after"). */
export function policyDurations<K extends PolicyKind>(kind: K, document: Policy<K>): Array<{ field: string; duration: string }> {
  const out: Array<{ field: string; duration: string }> = [];
  const add = (field: string, duration: string) => out.push({ field, duration });
  if (kind === 'acquisition') {
    const d = document as Policy<'acquisition'>;
    d.nurture.forEach((step, i) => add(`nurture.${i}.after`, step.after));
    add('leadExpiresAfter', d.leadExpiresAfter);
  } else if (kind === 'dunning') {
    const d = document as Policy<'dunning'>;
    d.retrySchedule.forEach((step, i) => add(`retrySchedule.${i}`, step));
    add('gracePeriod', d.gracePeriod);
    add('writeOffAfter', d.writeOffAfter);
  } else if (kind === 'disputes') {
    add('operatorDecisionDeadline', (document as Policy<'disputes'>).operatorDecisionDeadline);
  }
  return out;
}

/**
 * What a schema cannot check because it needs the brand: durations shorter than the brand's
 * mode allows (a live brand never duns every minute), and offer rules naming a plan the
 * brand's catalog does not have. Fields are relative to the document ("rules.2.plan").
 */
export function policyProblems<K extends PolicyKind>(
  kind: K,
  document: Policy<K>,
  brand: { mode: 'sandbox' | 'live'; planCodes: ReadonlySet<string> },
): FieldIssue[] {
  const problems: FieldIssue[] = [];
  for (const { field, duration } of policyDurations(kind, document)) {
    if (minimumLengthMs(duration) < MIN_PERIOD_MS[brand.mode]) {
      problems.push({
        field,
        message: brand.mode === 'sandbox' ? 'must be at least one minute (PT1M)' : 'must be at least one day (P1D) for a live brand',
      });
    }
  }
  if (kind === 'offers') {
    (document as Policy<'offers'>).rules.forEach((rule, i) => {
      if (!brand.planCodes.has(rule.plan)) problems.push({ field: `rules.${i}.plan`, message: `no plan "${rule.plan}" in this brand's catalog` });
    });
  }
  return problems;
}
