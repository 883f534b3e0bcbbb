/**
 * The offer engine: from a brand's offer rules and plans, the most profitable offer a buyer is
 * eligible for. Pure and deterministic (no I/O, clock or randomness), so the API's preview and
 * the customer workflow's activation reach the same answer from the same inputs.
 *
 * Money is integers in minor units; a discounted fee is computed exactly with bigint and
 * rounded once, half away from zero (the rule of domain/money.ts).
 */
import type { Plan } from './catalog';
import type { OfferRule } from './policies';

/** What the engine knows about a buyer; every attribute is optional. */
export interface Buyer {
  segment?: string;
  country?: string;
  source?: string;
  campaign?: string;
  volume?: number;
}

/** The part of a plan the engine prices with. */
export type OfferPlan = Pick<Plan, 'code' | 'version' | 'name' | 'currency' | 'recurringFeeMinor' | 'costToServeMinor' | 'billingPeriod'>;

export interface Offer {
  /** The rule that produced the offer; null for a requested plan offered at list price. */
  rule: string | null;
  plan: { code: string; version: number; name: string };
  currency: string;
  listPriceMinor: number;
  discountPercent: number;
  /** How many periods the discount lasts; null when it lasts for the whole subscription (or there is none). */
  discountPeriods: number | null;
  firstPeriodPriceMinor: number;
  /** Fees minus cost to serve over the policy's horizon. */
  expectedMarginMinor: number;
  reason: string;
}

export interface ConsideredOffer {
  rule: string | null;
  plan: string;
  eligible: boolean;
  reason: string;
  /** Present whenever the rule matched the buyer and its plan could be priced. */
  expectedMarginMinor?: number;
}

export interface OfferInput {
  rules: OfferRule[];
  plans: OfferPlan[];
  buyer: Buyer;
  horizonPeriods: number;
  /** Only offers for this plan code are eligible. */
  requestedPlan?: string;
}

export interface OfferDecision {
  offer: Offer | null;
  /** One entry per rule, in rule order, plus one for a requested plan offered at list price. */
  considered: ConsideredOffer[];
  /** Why this offer, or why none: the same words as `offer.reason` when there is an offer. */
  reason: string;
}

/**
 * An exact decimal for a percentage given as a JS number: the shortest decimal that prints as
 * that number (12.5 → 125/10, 7 → 7/1). Null for anything that is not a finite number ≥ 0.
 */
function exactDecimal(n: number): { units: bigint; scale: bigint } | null {
  if (!Number.isFinite(n) || n < 0) return null;
  const match = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(n));
  if (!match) return null;
  const [, whole, frac = '', exp = '0'] = match;
  let digits = `${whole}${frac}`;
  let decimals = frac.length - Number(exp);
  if (decimals < 0) {
    digits += '0'.repeat(-decimals);
    decimals = 0;
  }
  return { units: BigInt(digits), scale: 10n ** BigInt(decimals) };
}

function isValidPercent(p: number): boolean {
  return Number.isFinite(p) && p >= 0 && p <= 100;
}

function isMinorAmount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

/**
 * `listFeeMinor × (100 − discountPercent) / 100`, exact, rounded half away from zero to the
 * minor unit (999 at 12.5 % → 874.125 → 874; 1 at 50 % → 0.5 → 1). Always within [0, list].
 */
export function discountedFeeMinor(listFeeMinor: number, discountPercent: number): number {
  if (!isMinorAmount(listFeeMinor)) throw new RangeError(`a fee must be a non-negative safe integer of minor units, got ${listFeeMinor}`);
  const pct = isValidPercent(discountPercent) ? exactDecimal(discountPercent) : null;
  if (!pct) throw new RangeError(`a discount must be a percentage between 0 and 100, got ${discountPercent}`);
  const whole = 100n * pct.scale;
  const numerator = BigInt(listFeeMinor) * (whole - pct.units);
  const quotient = numerator / whole;
  // Both operands are non-negative, so half away from zero is half up.
  return Number(2n * (numerator % whole) >= whole ? quotient + 1n : quotient);
}

/**
 * Fees minus cost to serve over `horizonPeriods` periods: the discounted fee for the first
 * `discountPeriods` periods (null = every period), the list fee after. Exact (bigint).
 */
export function expectedMarginMinor(
  plan: Pick<OfferPlan, 'recurringFeeMinor' | 'costToServeMinor'>,
  discountPercent: number,
  discountPeriods: number | null,
  horizonPeriods: number,
): bigint {
  assertHorizon(horizonPeriods);
  if (!isMinorAmount(plan.costToServeMinor)) throw new RangeError(`a cost must be a non-negative safe integer of minor units, got ${plan.costToServeMinor}`);
  const discounted = BigInt(discountedFeeMinor(plan.recurringFeeMinor, discountPercent));
  const horizon = BigInt(horizonPeriods);
  const periodsDiscounted = discountPeriods === null ? horizon : BigInt(Math.min(discountPeriods, horizonPeriods));
  return (
    periodsDiscounted * discounted +
    (horizon - periodsDiscounted) * BigInt(plan.recurringFeeMinor) -
    horizon * BigInt(plan.costToServeMinor)
  );
}

function assertHorizon(horizonPeriods: number): void {
  if (!Number.isSafeInteger(horizonPeriods) || horizonPeriods < 1) {
    throw new RangeError(`horizonPeriods must be a positive integer, got ${horizonPeriods}`);
  }
}

export interface RuleMatch {
  matches: boolean;
  /** The conditions that held (`country=DE`), or, when it does not match, the ones that failed. */
  conditions: string[];
}

const LIST_CONDITIONS = ['segment', 'country', 'source', 'campaign'] as const;

/**
 * Whether a buyer meets every condition present in a rule's `when`. A condition on an attribute
 * the buyer lacks does not hold: a rule for DE buyers never fires for a buyer of unknown country.
 */
export function matchRule(when: OfferRule['when'], buyer: Buyer): RuleMatch {
  const held: string[] = [];
  const failed: string[] = [];
  for (const attribute of LIST_CONDITIONS) {
    const allowed = when[attribute];
    if (allowed === undefined) continue;
    const value = buyer[attribute];
    if (value === undefined) failed.push(`buyer has no ${attribute} (rule wants ${allowed.join(' or ')})`);
    else if (allowed.includes(value)) held.push(`${attribute}=${value}`);
    else failed.push(`${attribute}=${value} is not ${allowed.join(' or ')}`);
  }
  const { minVolume, maxVolume } = when;
  if (minVolume !== undefined || maxVolume !== undefined) {
    const range = minVolume !== undefined && maxVolume !== undefined ? `${minVolume}..${maxVolume}` : minVolume !== undefined ? `≥ ${minVolume}` : `≤ ${maxVolume}`;
    const volume = buyer.volume;
    if (volume === undefined) failed.push(`buyer has no volume (rule wants ${range})`);
    else if ((minVolume === undefined || volume >= minVolume) && (maxVolume === undefined || volume <= maxVolume)) held.push(`volume=${volume} (${range})`);
    else failed.push(`volume=${volume} is not ${range}`);
  }
  return failed.length === 0 ? { matches: true, conditions: held } : { matches: false, conditions: failed };
}

interface Candidate {
  rule: OfferRule;
  plan: OfferPlan;
  matched: string[];
  margin: bigint;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * Chooses the offer with the highest expected margin among the rules the buyer matches.
 *
 * - Ties go to the earlier rule in the list: rule order is the brand's priority.
 * - Margins are only compared within one currency: when matching rules price in different
 *   currencies, the currency of the earliest eligible rule wins and the others are ineligible.
 * - `requestedPlan` restricts the choice to that plan; when no rule for it matches, the plan is
 *   offered at list price (rule null), and when it is not in `plans` there is no offer.
 * - A rule for a plan missing from `plans`, or with values out of range, is ineligible and says
 *   why; it never makes the engine throw. Only a horizon below one period is a RangeError.
 * - When `plans` holds several versions of a code, the highest version is priced, so the
 *   result does not depend on the order of `plans`.
 */
export function chooseOffer(input: OfferInput): OfferDecision {
  const { rules, buyer, horizonPeriods, requestedPlan } = input;
  assertHorizon(horizonPeriods);
  const plans = new Map<string, OfferPlan>();
  for (const p of input.plans) {
    const seen = plans.get(p.code);
    if (!seen || p.version > seen.version) plans.set(p.code, p);
  }

  const considered: ConsideredOffer[] = [];
  const candidates: Candidate[] = [];
  rules.forEach((rule) => {
    const reject = (reason: string, margin?: bigint) => {
      considered.push({ rule: rule.id, plan: rule.plan, eligible: false, reason, ...(margin !== undefined ? { expectedMarginMinor: Number(margin) } : {}) });
    };
    const plan = plans.get(rule.plan);
    if (!plan) return reject(`plan "${rule.plan}" is not in the catalog`);
    const match = matchRule(rule.when, buyer);
    if (!match.matches) return reject(`does not match: ${match.conditions.join('; ')}`);
    if (!isValidPercent(rule.discountPercent)) return reject(`discountPercent ${rule.discountPercent} is not between 0 and 100`);
    if (rule.discountPeriods !== undefined && !(Number.isSafeInteger(rule.discountPeriods) && rule.discountPeriods > 0)) {
      return reject(`discountPeriods ${rule.discountPeriods} is not a positive integer`);
    }
    if (!isMinorAmount(plan.recurringFeeMinor) || !isMinorAmount(plan.costToServeMinor)) {
      return reject(`plan "${plan.code}" has a fee or cost that is not a non-negative integer of minor units`);
    }
    const margin = expectedMarginMinor(plan, rule.discountPercent, rule.discountPeriods ?? null, horizonPeriods);
    if (margin > BigInt(Number.MAX_SAFE_INTEGER) || margin < BigInt(Number.MIN_SAFE_INTEGER)) {
      return reject('expected margin exceeds the exactly representable range');
    }
    if (requestedPlan !== undefined && rule.plan !== requestedPlan) return reject(`offers plan "${rule.plan}", not the requested "${requestedPlan}"`, margin);
    const offerCurrency = candidates[0]?.plan.currency;
    if (offerCurrency !== undefined && plan.currency !== offerCurrency) {
      return reject(`priced in ${plan.currency}; margins are compared in ${offerCurrency}, the currency of the earliest eligible rule`, margin);
    }
    const matched = match.conditions.length > 0 ? `matched ${match.conditions.join(', ')}` : 'matches every buyer (no conditions)';
    considered.push({ rule: rule.id, plan: rule.plan, eligible: true, reason: matched, expectedMarginMinor: Number(margin) });
    candidates.push({ rule, plan, matched: match.conditions, margin });
  });

  let best: Candidate | undefined;
  for (const c of candidates) if (!best || c.margin > best.margin) best = c;

  if (best) {
    const { rule, plan } = best;
    const ties = candidates.filter((c) => c !== best && c.margin === best!.margin).map((c) => `"${c.rule.id}"`);
    const why = [
      `rule "${rule.id}" ${best.matched.length > 0 ? `matched ${best.matched.join(', ')}` : 'matches every buyer'}`,
      candidates.length === 1
        ? `the only matching rule${requestedPlan !== undefined ? ` for plan "${requestedPlan}"` : ''}`
        : `highest margin of ${candidates.length} matching rules${requestedPlan !== undefined ? ` for plan "${requestedPlan}"` : ''}`,
      ...(ties.length > 0 ? [`ties with ${ties.join(', ')}; the earlier rule wins`] : []),
    ].join('; ');
    const discountPercent = rule.discountPercent;
    const offer: Offer = {
      rule: rule.id,
      plan: { code: plan.code, version: plan.version, name: plan.name },
      currency: plan.currency,
      listPriceMinor: plan.recurringFeeMinor,
      discountPercent,
      discountPeriods: discountPercent > 0 ? (rule.discountPeriods ?? null) : null,
      firstPeriodPriceMinor: discountedFeeMinor(plan.recurringFeeMinor, discountPercent),
      expectedMarginMinor: Number(best.margin),
      reason: why,
    };
    return { offer, considered, reason: why };
  }

  if (requestedPlan !== undefined) {
    const plan = plans.get(requestedPlan);
    if (!plan) {
      const reason = `requested plan "${requestedPlan}" is not in the catalog`;
      considered.push({ rule: null, plan: requestedPlan, eligible: false, reason });
      return { offer: null, considered, reason };
    }
    if (!isMinorAmount(plan.recurringFeeMinor) || !isMinorAmount(plan.costToServeMinor)) {
      const reason = `requested plan "${requestedPlan}" has a fee or cost that is not a non-negative integer of minor units`;
      considered.push({ rule: null, plan: requestedPlan, eligible: false, reason });
      return { offer: null, considered, reason };
    }
    const margin = expectedMarginMinor(plan, 0, null, horizonPeriods);
    const forPlan = rules.filter((r) => r.plan === requestedPlan).length;
    const reason = `requested plan at list price: ${forPlan === 0 ? `no rule offers plan "${requestedPlan}"` : `none of the ${plural(forPlan, 'rule')} for plan "${requestedPlan}" matches this buyer`}`;
    considered.push({ rule: null, plan: requestedPlan, eligible: true, reason, expectedMarginMinor: Number(margin) });
    const offer: Offer = {
      rule: null,
      plan: { code: plan.code, version: plan.version, name: plan.name },
      currency: plan.currency,
      listPriceMinor: plan.recurringFeeMinor,
      discountPercent: 0,
      discountPeriods: null,
      firstPeriodPriceMinor: plan.recurringFeeMinor,
      expectedMarginMinor: Number(margin),
      reason,
    };
    return { offer, considered, reason };
  }

  const reason = rules.length === 0 ? 'no offer rules are configured' : `no offer: none of the ${plural(rules.length, 'rule')} is eligible for this buyer`;
  return { offer: null, considered, reason };
}
