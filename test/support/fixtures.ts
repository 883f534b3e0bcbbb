/** A small catalog and policy set for tests, written straight to the tables the API manages. */
import type { Db } from '../../infra/db';
import type { Policy, PolicyKind } from '../../domain/policies';

export const TEST_PLANS = [
  { code: 'starter', name: 'Starter', fee: 900, cost: 200, period: 'P1M', features: ['api'], quotas: { api_calls: 10_000 } },
  { code: 'pro', name: 'Pro', fee: 4900, cost: 1200, period: 'P1M', features: ['api', 'sso'], quotas: { api_calls: 100_000 } },
  { code: 'minute', name: 'Per minute', fee: 100, cost: 10, period: 'PT1M', features: ['api'], quotas: { api_calls: 100 } },
] as const;

export async function seedPlans(db: Db, brandId: string, currency = 'USD'): Promise<void> {
  await db('plans').insert(
    TEST_PLANS.map((p) => ({
      brand_id: brandId,
      code: p.code,
      version: 1,
      name: p.name,
      currency,
      recurring_fee_minor: p.fee,
      cost_to_serve_minor: p.cost,
      billing_period: p.period,
      entitlements: JSON.stringify({ features: p.features, quotas: p.quotas }),
      usage_components: JSON.stringify([]),
    })),
  );
}

export async function setPolicy<K extends PolicyKind>(db: Db, brandId: string, kind: K, document: Policy<K>): Promise<void> {
  await db('policies')
    .insert({ brand_id: brandId, kind, version: 1, document: JSON.stringify(document) })
    .onConflict(['brand_id', 'kind'])
    .merge({ document: JSON.stringify(document), version: db.raw('policies.version + 1') });
}

export const TEST_OFFER_RULES: Policy<'offers'> = {
  horizonPeriods: 12,
  rules: [
    { id: 'de-pro', when: { country: ['DE'] }, plan: 'pro', discountPercent: 20, discountPeriods: 3 },
    { id: 'startups', when: { segment: ['startup'] }, plan: 'starter', discountPercent: 0 },
    { id: 'everyone', when: {}, plan: 'starter', discountPercent: 0 },
  ],
};

/** A metered plan: a monthly fee, per-call micro-pricing above an allowance, graduated storage. */
export async function seedMeteredPlan(db: Db, brandId: string, currency = 'USD'): Promise<void> {
  await db('plans').insert({
    brand_id: brandId,
    code: 'metered',
    version: 1,
    name: 'Metered',
    currency,
    recurring_fee_minor: 1000,
    cost_to_serve_minor: 100,
    billing_period: 'P1M',
    entitlements: JSON.stringify({ features: ['api'], quotas: { api_calls: 1000 } }),
    usage_components: JSON.stringify([
      { metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004', includedQuantity: 1000 },
      {
        metric: 'storage_gb',
        model: 'graduated',
        includedQuantity: 0,
        tiers: [
          { upTo: 10, unitPrice: '0' },
          { upTo: null, unitPrice: '0.25' },
        ],
      },
    ]),
  });
}
