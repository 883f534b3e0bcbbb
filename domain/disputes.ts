/**
 * The dispute policy as pure rules, shared by the dispute workflow and its activities: when a
 * dispute is credited at once (it costs less than handling it, and the customer's automatic
 * credits this period stay under the abuse caps), what the gathered evidence decides, and what
 * an operator's decision credits. Amounts are integers in the invoice's minor units.
 */
import { divRoundHalfAway } from './invoice';
import { roundToMinor } from './money';
import type { Policy } from './policies';

export type DisputeKind = 'customer' | 'chargeback';
export type DisputeStatus = 'open' | 'evidence_gathering' | 'escalated' | 'awaiting_gateway' | 'resolved';
/** How an outcome was reached: at once by policy, by an evidence rule, by an operator, by the deadline's default, or by the gateway. */
export type DisputeResolution = 'auto' | 'rule' | 'operator' | 'default' | 'gateway';

/** Stable error and rejection types of disputes (ApplicationFailure.type, API error codes). */
export const DisputeErrorTypes = {
  DISPUTE_NOT_FOUND: 'DISPUTE_NOT_FOUND',
  NOT_AWAITING_DECISION: 'NOT_AWAITING_DECISION',
  ALREADY_DECIDED: 'ALREADY_DECIDED',
  DECISION_EXCEEDS_DISPUTE: 'DECISION_EXCEEDS_DISPUTE',
  INVALID_DECISION: 'INVALID_DECISION',
  CUSTOMER_NOT_FOUND: 'CUSTOMER_NOT_FOUND',
} as const;

/** The policy's figures in the dispute's currency (the policy states them as decimal amounts). */
export interface DisputeFigures {
  handlingCostMinor: number;
  maxAutoCreditsMinor: number;
  maxAutoCreditCount: number;
}

export function disputeFigures(policy: Policy<'disputes'>, currency: string): DisputeFigures {
  return {
    handlingCostMinor: Number(roundToMinor(policy.handlingCost, currency).minor),
    maxAutoCreditsMinor: Number(roundToMinor(policy.maxAutoCreditsPerPeriod, currency).minor),
    maxAutoCreditCount: policy.maxAutoCreditCountPerPeriod,
  };
}

/**
 * What a customer may dispute of one line, tax included as credit notes count it. A line of a
 * tax-exclusive invoice shows its net price: its share of the tax is added in proportion
 * (rounded half away from zero), so disputing the whole line can credit what the customer paid.
 */
export function lineDisputableMinor(lineMinor: number, invoice: { totalMinor: number; taxMinor: number; taxInclusive: boolean }): number {
  const net = invoice.totalMinor - invoice.taxMinor;
  if (lineMinor <= 0) return 0;
  if (invoice.taxInclusive || invoice.taxMinor <= 0 || net <= 0) return lineMinor;
  return Number(divRoundHalfAway(BigInt(lineMinor) * BigInt(invoice.totalMinor), BigInt(net)));
}

/** What the customer was already credited automatically in the period the cap counts. */
export interface AutoCreditUsage {
  creditedMinor: number;
  count: number;
}

export type AutomaticDecision =
  | { action: 'auto_credit' }
  | {
      action: 'review';
      /** Why not at once: it costs more than handling it, or the customer reached a cap. */
      reason: 'above_handling_cost' | 'auto_credit_amount_cap' | 'auto_credit_count_cap';
    };

/**
 * Credit at once when handling the dispute would cost more than the amount (the margin of a
 * micro-transaction is never eaten by a person looking at it), unless this credit would take the
 * customer's automatic credits in the period past either cap: then a person looks after all.
 */
export function decideAutomatically(amountMinor: number, figures: DisputeFigures, usage: AutoCreditUsage): AutomaticDecision {
  if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0) throw new RangeError(`a disputed amount must be positive whole minor units, got ${amountMinor}`);
  if (amountMinor >= figures.handlingCostMinor) return { action: 'review', reason: 'above_handling_cost' };
  if (usage.count + 1 > figures.maxAutoCreditCount) return { action: 'review', reason: 'auto_credit_count_cap' };
  if (usage.creditedMinor + amountMinor > figures.maxAutoCreditsMinor) return { action: 'review', reason: 'auto_credit_amount_cap' };
  return { action: 'auto_credit' };
}

/** The key the abuse cap counts by: the customer's billing period, or one bucket before the first. */
export function autoCreditPeriodKey(period: { number: number; start: string } | null): string {
  return period ? `period:${period.number}:${period.start}` : 'period:none';
}

/** What was gathered about a dispute; stored with it and shown to an operator. */
export interface DisputeEvidence {
  /** The disputed line, or null when the whole invoice is disputed. */
  line: {
    position: number;
    kind: string;
    description: string;
    metric: string | null;
    quantity: string | null;
    amountMinor: number;
    periodStart: string | null;
    periodEnd: string | null;
  } | null;
  /** Usage events billed on the invoice for the line's metric in the line's period (null: not a usage line). */
  usage: { events: number; quantity: string; firstAt: string | null; lastAt: string | null } | null;
  /** Messages to the customer about this invoice (the invoice email) and their delivery. */
  deliveries: { sent: number; failed: number; pending: number; templates: string[] };
  /** Charges of the invoice at the gateway as we recorded them. */
  payments: { succeeded: number; declined: number; paidMinor: number; gatewayPaymentIds: string[] };
  gatheredAt: string;
}

export type EvidenceDecision =
  | { action: 'credit'; rule: 'no_usage_behind_line' }
  | { action: 'escalate'; rule: 'usage_delivered' | 'not_a_usage_line' | 'whole_invoice' | 'delivery_failed' };

const USAGE_KINDS: ReadonlySet<string> = new Set(['usage', 'usage_adjustment']);

/**
 * What the evidence alone decides. A usage line with no usage event behind it in its period was
 * billed for nothing: credit it. Everything else needs a person: delivered usage may still have
 * been useless to the customer, and a recurring fee or a whole invoice is a judgement call. A
 * failed delivery of the invoice is named first, since it is what an operator should look at.
 */
export function decideByEvidence(evidence: DisputeEvidence): EvidenceDecision {
  if (evidence.line && USAGE_KINDS.has(evidence.line.kind) && evidence.usage && evidence.usage.events === 0) {
    return { action: 'credit', rule: 'no_usage_behind_line' };
  }
  if (evidence.deliveries.failed > 0) return { action: 'escalate', rule: 'delivery_failed' };
  if (!evidence.line) return { action: 'escalate', rule: 'whole_invoice' };
  if (!USAGE_KINDS.has(evidence.line.kind)) return { action: 'escalate', rule: 'not_a_usage_line' };
  return { action: 'escalate', rule: 'usage_delivered' };
}

/** An operator's decision on an escalated dispute, or the policy's default once the deadline passed. */
export interface DisputeDecision {
  decision: 'accept' | 'reject';
  /** Accept part of the disputed amount; omitted means all of it. */
  amountMinor?: number;
  note?: string;
}

/** Why a decision cannot apply to a dispute of `disputedMinor`, or undefined when it can. */
export function decisionProblem(decision: DisputeDecision, disputedMinor: number): { type: string; message: string } | undefined {
  if (decision.decision !== 'accept' && decision.decision !== 'reject') {
    return { type: DisputeErrorTypes.INVALID_DECISION, message: 'decision must be "accept" or "reject"' };
  }
  if (decision.amountMinor === undefined) return undefined;
  if (decision.decision === 'reject') return { type: DisputeErrorTypes.INVALID_DECISION, message: 'a rejection credits nothing: omit amountMinor' };
  if (!Number.isSafeInteger(decision.amountMinor) || decision.amountMinor <= 0) {
    return { type: DisputeErrorTypes.INVALID_DECISION, message: 'amountMinor must be a positive whole number of minor units' };
  }
  if (decision.amountMinor > disputedMinor) {
    return { type: DisputeErrorTypes.DECISION_EXCEEDS_DISPUTE, message: `amountMinor ${decision.amountMinor} is more than the ${disputedMinor} disputed` };
  }
  return undefined;
}

/** What a decision credits. */
export function decisionCreditMinor(decision: DisputeDecision, disputedMinor: number): number {
  if (decision.decision === 'reject') return 0;
  return decision.amountMinor ?? disputedMinor;
}

/**
 * A chargeback's ledger transaction (debits positive). When the gateway takes the money back it
 * leaves gateway clearing as contra revenue, as a refund does ("taken"); when the merchant wins,
 * the gateway returns it ("returned"). The invoice stays paid either way, as after a refund.
 */
export function chargebackLedgerEntries(amountMinor: number, movement: 'taken' | 'returned'): Array<{ account: string; amountMinor: number }> {
  if (!Number.isSafeInteger(amountMinor) || amountMinor <= 0) throw new RangeError(`a chargeback amount must be positive whole minor units, got ${amountMinor}`);
  const sign = movement === 'taken' ? 1 : -1;
  return [
    { account: 'revenue_chargebacks', amountMinor: sign * amountMinor },
    { account: 'gateway_clearing', amountMinor: -sign * amountMinor },
  ];
}

/** A dispute as the workflow, the API and operators see it. */
export interface Dispute {
  id: string;
  brandId: string;
  customerId: string;
  invoiceId: string;
  /** null: the whole invoice. */
  linePosition: number | null;
  amountMinor: number;
  currency: string;
  reason: string;
  kind: DisputeKind;
  chargebackId: string | null;
  paymentId: string | null;
  status: DisputeStatus;
  autoDecision: string | null;
  resolution: DisputeResolution | null;
  outcome: 'credited' | 'rejected' | 'won' | 'lost' | null;
  creditedMinor: number;
  evidence: DisputeEvidence | null;
  decision: DisputeDecision | null;
  decisionDeadline: string | null;
  evidenceDueBy: string | null;
  evidenceSubmittedAt: string | null;
  creditNoteId: string | null;
  openedAt: string;
  resolvedAt: string | null;
}

/** Dispute ids: "dsp_" and 32 lowercase hex digits. */
export const DISPUTE_ID = /^dsp_[0-9a-f]{32}$/;
