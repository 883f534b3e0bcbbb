/** What the offer engine needs from PostgreSQL for one brand; shared by the API and activities. */
import type { Db } from '../infra/db';
import type { OfferPlan } from '../domain/offers';
import type { OfferRule } from '../domain/policies';
import { latestPlans } from './plans';
import { getPolicy } from './policies';

export interface OfferInputs {
  rules: OfferRule[];
  /** The newest version of each of the brand's plans. */
  plans: OfferPlan[];
  horizonPeriods: number;
}

export async function loadOfferInputs(db: Db, brandId: string): Promise<OfferInputs> {
  const [plans, policy] = await Promise.all([latestPlans(db, brandId), getPolicy(db, brandId, 'offers')]);
  return {
    rules: policy.document.rules,
    plans: plans.map((p) => ({
      code: p.code,
      version: p.version,
      name: p.name,
      currency: p.currency,
      recurringFeeMinor: p.recurringFeeMinor,
      costToServeMinor: p.costToServeMinor,
      billingPeriod: p.billingPeriod,
    })),
    horizonPeriods: policy.document.horizonPeriods,
  };
}
