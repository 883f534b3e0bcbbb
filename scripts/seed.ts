/**
 * The example catalog and policies of the `demo` sandbox brand, so `npm start` has something
 * to sell. Seeds only what the brand has never had: an operator's own plans and policies
 * survive every restart.
 */
import { createPlanVersion, planCodes } from '../data/plans';
import { createPolicyIfAbsent } from '../data/policies';
import { PlanInput } from '../domain/catalog';
import { Policy, POLICY_SCHEMAS, PolicyKind, policyProblems } from '../domain/policies';
import type { Db } from '../infra/db';
import type { input } from 'zod';

export const DEMO_PLANS: Array<input<typeof PlanInput>> = [
  {
    code: 'starter',
    name: 'Starter',
    recurringFee: '9.00',
    costToServe: '2.00',
    billingPeriod: 'P1M',
    entitlements: { features: ['api'], quotas: { api_calls: 10_000 } },
  },
  {
    code: 'pro',
    name: 'Pro',
    recurringFee: '49.00',
    costToServe: '12.00',
    billingPeriod: 'P1M',
    entitlements: { features: ['api', 'webhooks', 'priority_support'], quotas: { api_calls: 1_000_000, seats: 10 } },
    // Calls beyond the included million cost 0.04 cents each: priced below one cent, exactly.
    usage: [{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 1_000_000 }],
  },
  {
    code: 'enterprise',
    name: 'Enterprise',
    recurringFee: '499.00',
    costToServe: '150.00',
    billingPeriod: 'P1M',
    entitlements: {
      features: ['api', 'webhooks', 'priority_support', 'sso', 'audit_log'],
      quotas: { api_calls: 10_000_000, seats: 100 },
    },
    usage: [
      {
        metric: 'api_calls',
        model: 'graduated',
        includedQuantity: 10_000_000,
        tiers: [
          { upTo: 50_000_000, unitPrice: '0.0002' },
          { upTo: null, unitPrice: '0.0001' },
        ],
      },
    ],
  },
  {
    // A period every minute, to watch renewals, invoices and dunning happen in real time.
    code: 'minute',
    name: 'Minute (sandbox demo)',
    recurringFee: '1.00',
    costToServe: '0.10',
    billingPeriod: 'PT1M',
    entitlements: { features: ['api'], quotas: { api_calls: 1_000 } },
    // Micro-priced calls above an allowance: usage posted now shows on the next minute's invoice.
    usage: [{ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 1_000 }],
  },
];

export const DEMO_POLICIES: { [K in 'offers' | 'acquisition']: input<(typeof POLICY_SCHEMAS)[K]> } = {
  offers: {
    rules: [
      { id: 'de-pro-launch', description: 'German buyers: Pro at 20 % off for three periods', when: { country: ['DE'] }, plan: 'pro', discountPercent: 20, discountPeriods: 3 },
      { id: 'startups', description: 'Startups start small', when: { segment: ['startup'] }, plan: 'starter' },
      { id: 'partner-pro', description: 'Partner referrals: Pro at 10 % off', when: { source: ['partner'] }, plan: 'pro', discountPercent: 10 },
      { id: 'everyone', description: 'Everyone else', when: {}, plan: 'starter' },
    ],
    horizonPeriods: 12,
  },
  acquisition: {
    nurture: [
      { after: 'PT2M', template: 'nurture-welcome' },
      { after: 'PT5M', template: 'nurture-reminder' },
    ],
    leadExpiresAfter: 'PT30M',
  },
};

export interface SeedResult {
  plans: string[];
  policies: PolicyKind[];
  /** Policies left out because they do not fit what the brand has (e.g. rules for plans it lacks). */
  skipped: Array<{ kind: PolicyKind; reason: string }>;
}

/** Seeds the brand (default `demo`, which must exist) and reports what it added. */
export async function seedDemoBrand(db: Db, brandId = 'demo'): Promise<SeedResult> {
  const brand = await db('brands').where({ id: brandId }).first('id', 'currency', 'mode');
  if (!brand) throw new Error(`brand "${brandId}" does not exist`);
  const result: SeedResult = { plans: [], policies: [], skipped: [] };

  if ((await planCodes(db, brandId)).size === 0) {
    for (const plan of DEMO_PLANS) {
      const { created } = await createPlanVersion(db, brand, PlanInput.parse(plan));
      if (created) result.plans.push(plan.code);
    }
  }

  const codes = await planCodes(db, brandId);
  for (const kind of Object.keys(DEMO_POLICIES) as Array<keyof typeof DEMO_POLICIES>) {
    const document = POLICY_SCHEMAS[kind].parse(DEMO_POLICIES[kind]) as Policy<typeof kind>;
    const problems = policyProblems(kind, document, { mode: brand.mode, planCodes: codes });
    if (problems.length > 0) {
      result.skipped.push({ kind, reason: problems.map((p) => `${p.field} ${p.message}`).join('; ') });
      continue;
    }
    if (await createPolicyIfAbsent(db, brandId, kind, document)) result.policies.push(kind);
  }
  return result;
}
