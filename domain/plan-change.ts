/**
 * Plan changes and cancellation: proration by one rule, and when to suggest a bigger plan.
 *
 * The proration rule (whole seconds): a billing period [start, end) lasts T whole seconds; a
 * change at instant t leaves R = floor((end − t) / 1 s) of them. The unused part of a fee F is
 * F × R / T, rounded once, half away from zero, to the currency's minor unit. An upgrade credits
 * the unused part of what was charged for the old plan this period and charges the same part of
 * the new plan's fee, so a change to an equally priced plan nets to zero and nothing is created
 * or lost: the used part (F − credit) and the credit always add up to F.
 */
import type { UsageComponent } from './catalog';
import { Decimal } from './decimal';
import { divRoundHalfAway, DraftLine } from './invoice';
import { discountedFeeMinor } from './offers';
import type { BillingPeriod } from './period';
import { rateUsage } from './rating';

export interface FeeTerms {
  planCode: string;
  planName: string;
  listPriceMinor: number;
  discountPercent: number;
  /** Periods 1..discountPeriods are discounted; null means every period. */
  discountPeriods: number | null;
}

/** What the customer was (or will be) charged for the recurring fee of period `n`. */
export function periodFeeMinor(terms: FeeTerms, n: number): number {
  const discounted = terms.discountPercent > 0 && (terms.discountPeriods === null || n <= terms.discountPeriods);
  return discounted ? discountedFeeMinor(terms.listPriceMinor, terms.discountPercent) : terms.listPriceMinor;
}

export interface PeriodShare {
  /** Whole seconds left in the period at the change. */
  remainingSeconds: number;
  totalSeconds: number;
}

export function remainingShare(period: BillingPeriod, at: string): PeriodShare {
  const start = Date.parse(period.start);
  const end = Date.parse(period.end);
  const t = Date.parse(at);
  if (!(start < end)) throw new RangeError(`period ${period.number} is empty`);
  if (!(t >= start && t <= end)) throw new RangeError(`${at} is outside period ${period.number} (${period.start} – ${period.end})`);
  return { remainingSeconds: Math.floor((end - t) / 1000), totalSeconds: Math.floor((end - start) / 1000) };
}

/** The unused part of a fee, by the rule above. */
export function unusedMinor(feeMinor: number, share: PeriodShare): number {
  if (!Number.isSafeInteger(feeMinor)) throw new RangeError(`a fee must be whole minor units, got ${feeMinor}`);
  if (share.totalSeconds <= 0) return 0;
  return Number(divRoundHalfAway(BigInt(feeMinor) * BigInt(share.remainingSeconds), BigInt(share.totalSeconds)));
}

function describeShare(share: PeriodShare): string {
  const days = Math.floor(share.remainingSeconds / 86_400);
  const hours = Math.floor((share.remainingSeconds % 86_400) / 3_600);
  const left = days > 0 ? `${days} d ${hours} h` : hours > 0 ? `${hours} h ${Math.floor((share.remainingSeconds % 3_600) / 60)} min` : `${share.remainingSeconds} s`;
  return `${left} of the period left (${share.remainingSeconds} of ${share.totalSeconds} s)`;
}

function prorationLine(description: string, amountMinor: number, at: string, period: BillingPeriod, share: PeriodShare, detail: Record<string, unknown>): DraftLine {
  return {
    kind: 'proration',
    description,
    metric: null,
    quantity: null,
    unitPrice: null,
    amountMinor,
    periodStart: at,
    periodEnd: period.end,
    detail: { ...detail, remainingSeconds: share.remainingSeconds, totalSeconds: share.totalSeconds, rule: 'fee × remaining whole seconds ÷ period seconds, rounded half away from zero' },
  };
}

/**
 * The proration lines of a change from `from` to `to` at `at` within `period`: a credit for the
 * unused part of the old plan's fee (what was charged for this period), a charge for the same
 * part of the new plan's fee. The new plan's fee for the period is its list price (an offer's
 * discount belongs to the plan it was offered for).
 */
export function planChangeProration(input: { from: FeeTerms; to: FeeTerms; period: BillingPeriod; at: string }): DraftLine[] {
  const share = remainingShare(input.period, input.at);
  const charged = periodFeeMinor(input.from, input.period.number);
  const credit = unusedMinor(charged, share);
  const charge = unusedMinor(periodFeeMinor(input.to, input.period.number), share);
  return [
    prorationLine(`Unused time on ${input.from.planName}: ${describeShare(share)}`, -credit, input.at, input.period, share, {
      planCode: input.from.planCode,
      feeMinor: charged,
    }),
    prorationLine(`${input.to.planName} for the rest of period ${input.period.number}`, charge, input.at, input.period, share, {
      planCode: input.to.planCode,
      feeMinor: periodFeeMinor(input.to, input.period.number),
    }),
  ];
}

/** Cancelling now: the unused part of this period's fee is credited. */
export function cancellationProration(input: { from: FeeTerms; period: BillingPeriod; at: string }): DraftLine[] {
  const share = remainingShare(input.period, input.at);
  const charged = periodFeeMinor(input.from, input.period.number);
  const credit = unusedMinor(charged, share);
  if (credit === 0) return [];
  return [prorationLine(`Unused time on ${input.from.planName}: ${describeShare(share)}`, -credit, input.at, input.period, share, { planCode: input.from.planCode, feeMinor: charged })];
}

/** Upgrades take effect at once; downgrades (a lower list price) wait for the period's end. */
export function changeDirection(fromListMinor: number, toListMinor: number): 'upgrade' | 'downgrade' {
  return toListMinor < fromListMinor ? 'downgrade' : 'upgrade';
}

export interface CandidatePlan {
  code: string;
  name: string;
  currency: string;
  billingPeriod: string;
  recurringFeeMinor: number;
  usageComponents: UsageComponent[];
}

export interface UpgradeSuggestion {
  planCode: string;
  planName: string;
  reason: 'cheaper_for_customer' | 'allowance_exceeded';
  /** What the period's usage cost on the current plan, fee included. */
  currentCostMinor: number;
  /** What the same usage would have cost on the suggested plan, fee included. */
  suggestedCostMinor: number;
}

function periodCostMinor(plan: Pick<CandidatePlan, 'recurringFeeMinor' | 'usageComponents'>, usage: Readonly<Record<string, string>>, currency: string): number {
  // Each line rounds once (as on an invoice); sums of safe integers of minor units stay exact.
  return plan.usageComponents.reduce((sum, c) => sum + rateUsage(c, usage[c.metric] ?? '0', currency).amountMinor, plan.recurringFeeMinor);
}

/**
 * Whether a period's usage argues for a bigger plan: either a plan with a higher fee would have
 * cost the customer less for the same usage (good for them), or they went past an allowance of
 * their plan and a bigger plan includes more of that metric (good for both: revenue moves from
 * overage into a steadier fee). The cheapest such plan for the customer is suggested.
 */
export function suggestUpgrade(input: {
  current: CandidatePlan;
  usage: Readonly<Record<string, string>>;
  catalog: readonly CandidatePlan[];
}): UpgradeSuggestion | null {
  const { current, usage } = input;
  const bigger = input.catalog.filter(
    (p) => p.code !== current.code && p.currency === current.currency && p.billingPeriod === current.billingPeriod && p.recurringFeeMinor > current.recurringFeeMinor,
  );
  if (bigger.length === 0) return null;
  const currentCost = periodCostMinor(current, usage, current.currency);
  const costed = bigger
    .map((p) => ({ plan: p, cost: periodCostMinor(p, usage, current.currency) }))
    .sort((a, b) => a.cost - b.cost || a.plan.recurringFeeMinor - b.plan.recurringFeeMinor);
  const cheaper = costed.find((c) => c.cost < currentCost);
  if (cheaper) {
    return { planCode: cheaper.plan.code, planName: cheaper.plan.name, reason: 'cheaper_for_customer', currentCostMinor: currentCost, suggestedCostMinor: cheaper.cost };
  }
  const exceeded = current.usageComponents.filter((c) => {
    return c.includedQuantity > 0 && Decimal.parse(usage[c.metric] ?? '0').gt(Decimal.parse(String(c.includedQuantity)));
  });
  if (exceeded.length === 0) return null;
  const roomier = costed.find((c) =>
    exceeded.every((ex) => {
      const theirs = c.plan.usageComponents.find((u) => u.metric === ex.metric);
      return theirs !== undefined && theirs.includedQuantity > ex.includedQuantity;
    }),
  );
  if (!roomier) return null;
  return { planCode: roomier.plan.code, planName: roomier.plan.name, reason: 'allowance_exceeded', currentCostMinor: currentCost, suggestedCostMinor: roomier.cost };
}
