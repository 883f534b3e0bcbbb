/**
 * Activation: the offer, then provisioning as a saga — service credential, entitlements,
 * subscription. Each step is idempotent by the provisioning id, and each has a compensation
 * the workflow runs in reverse when a later step fails.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { loadOfferInputs } from '../data/offers';
import { latestPlan, latestPlans, planVersion } from '../data/plans';
import type { Entitlements } from '../domain/catalog';
import { Buyer, chooseOffer, Offer } from '../domain/offers';
import { suggestUpgrade, UpgradeSuggestion } from '../domain/plan-change';
import type { Db } from '../infra/db';
import { ErrorTypes, PlanSnapshot, Subscription } from '../workflows/shared';

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

    /** The latest version of a plan, as a plan change moves a subscription to it. */
    async resolvePlan({ brandId, planCode }: { brandId: string; planCode: string }): Promise<PlanSnapshot> {
      const plan = await latestPlan(db, brandId, planCode);
      if (!plan) throw ApplicationFailure.nonRetryable(`plan "${planCode}" does not exist`, ErrorTypes.PLAN_NOT_FOUND);
      return {
        code: plan.code,
        version: plan.version,
        name: plan.name,
        currency: plan.currency,
        recurringFeeMinor: plan.recurringFeeMinor,
        billingPeriod: plan.billingPeriod,
        entitlements: plan.entitlements,
      };
    },

    /** Moves the subscription row and the entitlements to the new plan (idempotent: it sets, never adds). */
    async applyPlanChange(input: ProvisioningStep & { subscription: Subscription; entitlements: Entitlements }): Promise<void> {
      const s = input.subscription;
      await db.transaction(async (trx) => {
        await trx('subscriptions')
          .where({ id: input.provisioningId, brand_id: input.brandId })
          .update({ plan_code: s.planCode, plan_version: s.planVersion, price_minor: s.listPriceMinor, discount: null, offer_rule: s.offerRule });
        await trx('entitlements')
          .where({ brand_id: input.brandId, customer_id: input.customerId })
          .update({ features: JSON.stringify(input.entitlements.features), quotas: JSON.stringify(input.entitlements.quotas), updated_at: trx.fn.now() });
      });
    },

    /**
     * Whether the usage billed on a period invoice argues for a bigger plan of the brand's
     * current catalog (see domain/plan-change.ts suggestUpgrade).
     */
    async suggestUpgrade(input: { brandId: string; planCode: string; planVersion: number; invoiceId: string }): Promise<UpgradeSuggestion | null> {
      const [current, catalog, usage] = await Promise.all([
        planVersion(db, input.brandId, input.planCode, input.planVersion),
        latestPlans(db, input.brandId),
        db('invoice_lines').where({ invoice_id: input.invoiceId, kind: 'usage' }).select('metric', db.raw('quantity::text as quantity')),
      ]);
      if (!current) return null;
      const totals: Record<string, string> = {};
      for (const row of usage as Array<{ metric: string; quantity: string }>) totals[row.metric] = row.quantity.replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
      return suggestUpgrade({ current, usage: totals, catalog });
    },

    async cancelSubscription(input: ProvisioningStep): Promise<void> {
      await db('subscriptions').where({ id: input.provisioningId, brand_id: input.brandId }).update({ status: 'cancelled' });
    },
  };
}
