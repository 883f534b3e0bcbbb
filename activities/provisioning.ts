/**
 * Activation: the offer, then provisioning as a saga — service credential, entitlements,
 * subscription. Each step is idempotent by the provisioning id, and each has a compensation
 * the workflow runs in reverse when a later step fails.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { loadOfferInputs } from '../data/offers';
import { planVersion } from '../data/plans';
import type { Entitlements } from '../domain/catalog';
import { Buyer, chooseOffer, Offer } from '../domain/offers';
import type { Db } from '../infra/db';
import { ErrorTypes, Subscription } from '../workflows/shared';

export interface ProvisioningStep {
  brandId: string;
  customerId: string;
  provisioningId: string;
}

export interface ResolvedOffer {
  offer: Offer;
  billingPeriod: string;
  entitlements: Entitlements;
}

export function createProvisioningActivities({ db }: { db: Db }) {
  return {
    /** Runs the offer engine on the brand's current catalog and rules, or checks the chosen plan. */
    async resolveOffer(input: { brandId: string; requestedPlan?: string; buyer: Buyer }): Promise<ResolvedOffer> {
      const { rules, plans, horizonPeriods } = await loadOfferInputs(db, input.brandId);
      if (input.requestedPlan && !plans.some((p) => p.code === input.requestedPlan)) {
        throw ApplicationFailure.nonRetryable(`plan "${input.requestedPlan}" does not exist`, ErrorTypes.PLAN_NOT_FOUND);
      }
      const { offer } = chooseOffer({ rules, plans, buyer: input.buyer, horizonPeriods, requestedPlan: input.requestedPlan });
      if (!offer) {
        throw ApplicationFailure.nonRetryable('no offer matches this buyer; name a plan explicitly', ErrorTypes.NO_OFFER);
      }
      const plan = await planVersion(db, input.brandId, offer.plan.code, offer.plan.version);
      if (!plan) throw ApplicationFailure.nonRetryable(`plan "${offer.plan.code}" v${offer.plan.version} vanished`, ErrorTypes.PLAN_NOT_FOUND);
      return { offer, billingPeriod: plan.billingPeriod, entitlements: plan.entitlements };
    },

    async createCredential(input: ProvisioningStep & { hash: string; prefix: string }): Promise<void> {
      await db('customer_credentials')
        .insert({
          brand_id: input.brandId,
          customer_id: input.customerId,
          provisioning_id: input.provisioningId,
          secret_hash: input.hash,
          prefix: input.prefix,
        })
        .onConflict(['brand_id', 'provisioning_id'])
        .ignore();
    },

    async revokeCredential(input: ProvisioningStep): Promise<void> {
      await db('customer_credentials')
        .where({ brand_id: input.brandId, provisioning_id: input.provisioningId })
        .whereNull('revoked_at')
        .update({ revoked_at: db.fn.now() });
    },

    async grantEntitlements(input: ProvisioningStep & { entitlements: Entitlements }): Promise<void> {
      await db('entitlements')
        .insert({
          brand_id: input.brandId,
          customer_id: input.customerId,
          provisioning_id: input.provisioningId,
          features: JSON.stringify(input.entitlements.features),
          quotas: JSON.stringify(input.entitlements.quotas),
          active: true,
        })
        .onConflict(['brand_id', 'customer_id'])
        .merge(['provisioning_id', 'features', 'quotas', 'active', 'updated_at']);
    },

    /** Only the grant made by this provisioning is withdrawn. */
    async revokeEntitlements(input: ProvisioningStep): Promise<void> {
      await db('entitlements')
        .where({ brand_id: input.brandId, customer_id: input.customerId, provisioning_id: input.provisioningId })
        .update({ active: false, updated_at: db.fn.now() });
    },

    async createSubscription(
      input: ProvisioningStep & { subscription: Subscription; periodStart: string; periodEnd: string },
    ): Promise<void> {
      const s = input.subscription;
      await db('subscriptions')
        .insert({
          id: input.provisioningId,
          brand_id: input.brandId,
          customer_id: input.customerId,
          plan_code: s.planCode,
          plan_version: s.planVersion,
          price_minor: s.listPriceMinor,
          currency: s.currency,
          discount: s.discountPercent > 0 ? JSON.stringify({ percent: s.discountPercent, periods: s.discountPeriods }) : null,
          offer_rule: s.offerRule,
          status: 'active',
          current_period_start: input.periodStart,
          current_period_end: input.periodEnd,
        })
        .onConflict('id')
        .ignore();
    },

    async cancelSubscription(input: ProvisioningStep): Promise<void> {
      await db('subscriptions').where({ id: input.provisioningId, brand_id: input.brandId }).update({ status: 'cancelled' });
    },
  };
}
