/**
 * Names and payload types shared by workflows, the API, workers and tests. No Node, DB or
 * network imports: this module is bundled into the workflow sandbox.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Entitlements } from '../domain/catalog';
import type { DraftLine } from '../domain/invoice';
import type { Buyer, Offer } from '../domain/offers';
import type { BillingPeriod } from '../domain/period';

export const DEFAULT_TASK_QUEUE = 'closeloop';

export type CustomerStage = 'lead' | 'active' | 'past_due' | 'suspended' | 'cancelled' | 'lead_expired';

/** Search attributes: every customer is findable in the Web UI by these. */
export const SA = {
  customerId: defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD),
  brandId: defineSearchAttributeKey('BrandId', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('CustomerStage', SearchAttributeType.KEYWORD),
  plan: defineSearchAttributeKey('PlanCode', SearchAttributeType.KEYWORD),
  dunningState: defineSearchAttributeKey('DunningState', SearchAttributeType.KEYWORD),
} as const;

export const SEARCH_ATTRIBUTE_KEYS = Object.values(SA);

/** What a lead came with; attribution for the acquisition funnel. */
export interface LeadInfo {
  source: string;
  campaign: string;
  attributes: Record<string, string | number | boolean>;
}

export interface LeadState extends LeadInfo {
  capturedAt: string;
  /** Set once the acquisition policy has been read. */
  expiresAt: string | null;
  /** Nurture steps already sent, by index into the policy's list. */
  nurtureSent: number;
}

export interface Subscription {
  id: string;
  planCode: string;
  planVersion: number;
  planName: string;
  currency: string;
  /** The recurring fee before discount. */
  listPriceMinor: number;
  discountPercent: number;
  discountPeriods: number | null;
  offerRule: string | null;
  billingPeriod: string;
  /** Anchor of the billing periods: the moment of activation. */
  startedAt: string;
}

export interface ActivationError {
  type: string;
  message: string;
  at: string;
}

export interface StageChange {
  stage: CustomerStage;
  at: string;
}

/** An invoice as the customer workflow remembers it (the database holds the whole document). */
export interface InvoiceRef {
  invoiceId: string;
  /** Settled: paid, credited to zero, or written off. */
  settled: boolean;
  number: string;
  billingKey: string;
  currency: string;
  totalMinor: number;
  amountDueMinor: number;
  dueAt: string;
}

export interface BillingState {
  /** The recurring fee for period 1 is invoiced in advance right after activation. */
  openingInvoiced: boolean;
  /** Charge attempts so far; each attempt's number goes into its idempotency key. */
  chargeAttempts: number;
  /** The most recent invoices, newest last (bounded). */
  invoices: InvoiceRef[];
}

export interface OpenChargeback {
  chargebackId: string;
  paymentId: string;
  invoiceId: string;
  amountMinor: number;
  currency: string;
  reason: string;
  evidenceDueBy: string;
  receivedAt: string;
}

export type DunningStatus = 'none' | 'retrying' | 'awaiting_payment_method' | 'suspended' | 'written_off';

/** A dunning episode: from the first declined charge until paid or written off. */
export interface Dunning {
  startedAt: string;
  /** The brand's dunning policy as it was when the episode began. */
  policy: { retrySchedule: string[]; gracePeriod: string; writeOffAfter: string };
  retriesDone: number;
  hardDeclined: boolean;
  /** When retries stopped (exhausted or a hard decline): the grace period runs from here. */
  awaitingSince: string | null;
  suspended: boolean;
  lastDecline: { code: string; message: string; at: string };
}

export interface CustomerState {
  brandId: string;
  customerId: string;
  email: string;
  name: string | null;
  stage: CustomerStage;
  createdAt: string;
  lead: LeadState | null;
  subscription: Subscription | null;
  entitlements: Entitlements | null;
  currentPeriod: BillingPeriod | null;
  /** What the customer owes on finalized invoices (collections reduce it). */
  balanceMinor: number;
  billing: BillingState;
  /** The gateway token charged for invoices. */
  paymentMethod: string | null;
  dunning: Dunning | null;
  dunningState: DunningStatus;
  /** Allowance thresholds already crossed (and told to the customer), as "period:metric:threshold". */
  usageAlerts: string[];
  /** Chargebacks the gateway reported; the dispute workflow (next) works them. */
  chargebacks: OpenChargeback[];
  lastActivationError: ActivationError | null;
  /** The latest stage changes, newest last (bounded). */
  stageHistory: StageChange[];
  /** Absent in states carried from runs before plan changes existed. */
  planChanges?: PlanChanges;
  /** Set when the customer asked to cancel (now, or at the end of the period). */
  cancellation?: Cancellation | null;
  /** Disputes whose dispute workflow is still running; the customer workflow ends only after them. */
  openDisputes?: string[];
}

/** A plan as a change moves the subscription to it (the latest version of the code). */
export interface PlanSnapshot {
  code: string;
  version: number;
  name: string;
  currency: string;
  recurringFeeMinor: number;
  billingPeriod: string;
  entitlements: Entitlements;
}

export interface ScheduledPlanChange {
  changeId: string;
  requestedAt: string;
  effectiveAt: string;
  to: PlanSnapshot;
}

export interface PlanChangeRecord {
  changeId: string;
  direction: 'upgrade' | 'downgrade' | null;
  status: 'applied' | 'scheduled' | 'withdrawn' | 'rejected';
  fromPlan: string;
  toPlan: string;
  at: string;
  /** Why a change (sent as a signal) was rejected. */
  reason?: { type: string; message: string };
}

export interface PlanChanges {
  scheduled: ScheduledPlanChange | null;
  /** The latest changes and rejections, newest last (bounded). */
  history: PlanChangeRecord[];
}

export interface Cancellation {
  when: 'now' | 'period_end';
  requestedAt: string;
  effectiveAt: string;
  reason: string | null;
  /** True once the subscription has ended (entitlements removed, final invoice issued). */
  done: boolean;
}

export interface CustomerWorkflowInput {
  brandId: string;
  customerId: string;
  email: string;
  name?: string;
  /** Present when the customer starts as a lead (POST /v1/leads): nurtured, may expire. */
  lead?: LeadInfo;
  /** Carried across continue-as-new; absent on the first run. */
  carried?: CustomerState;
}

export interface ActivateInput {
  /** A plan code; omitted means the offer engine chooses from the buyer's attributes. */
  plan?: string;
  /** A payment method token from the gateway's client-side tokenisation. */
  paymentMethod: string;
  /** Attributes the offer engine reads (segment, country, source, campaign, volume). */
  buyer?: Buyer;
  /**
   * The customer's service credential is generated by the API, which shows it once; only its
   * hash reaches Temporal, so no secret is ever stored in workflow history.
   */
  credential: { hash: string; prefix: string };
}

export interface ActivationResult {
  stage: CustomerStage;
  offer: Offer;
  subscription: Subscription;
  entitlements: Entitlements;
  currentPeriod: BillingPeriod;
}

export const getCustomerQuery = defineQuery<CustomerState>('getCustomer');
export const activateUpdate = defineUpdate<ActivationResult, [ActivateInput]>('activate');

export interface PaymentMethodResult {
  stage: CustomerStage;
  dunningState: DunningStatus;
  /** Whether outstanding invoices were collected with the new method. */
  collected: boolean;
}
/** A new payment token; in dunning it triggers an immediate retry. */
export const updatePaymentMethodUpdate = defineUpdate<PaymentMethodResult, [{ paymentMethod: string }]>('updatePaymentMethod');

export interface PlanChangeRequest {
  /** The plan code to move to (its latest version). */
  plan: string;
  /** Upgrades default to now, downgrades happen at the period's end (the only choice for them). */
  when?: 'now' | 'period_end';
  /** The caller's id for the change; defaults to the update or signal's own id. */
  changeId?: string;
}

export interface PlanChangeResult {
  changeId: string;
  direction: 'upgrade' | 'downgrade';
  status: 'applied' | 'scheduled';
  from: { planCode: string; planVersion: number };
  to: { planCode: string; planVersion: number; planName: string };
  effectiveAt: string;
  /** Credit for the unused old plan and charge for the rest of the period on the new one. */
  prorationLines: DraftLine[];
  /** The invoice that billed the proration (and the usage so far at the old prices), if any. */
  invoice: { invoiceId: string; number: string; currency: string; totalMinor: number; amountDueMinor: number } | null;
  entitlements: Entitlements;
}

/** Change plan and get the proration back (POST /v1/customers/:id/plan-changes). */
export const changePlanUpdate = defineUpdate<PlanChangeResult, [PlanChangeRequest]>('changePlan');
/** The same change from callers that do not wait; a rejection is recorded in `planChanges.history`. */
export const requestPlanChangeSignal = defineSignal<[PlanChangeRequest]>('requestPlanChange');
/** Withdraws a scheduled downgrade before it takes effect. */
export const withdrawPlanChangeUpdate = defineUpdate<ScheduledPlanChange, []>('withdrawScheduledPlanChange');

export interface CancelRequest {
  when: 'now' | 'period_end';
  reason?: string;
}

export interface CancelResult {
  stage: CustomerStage;
  cancellation: Cancellation;
  /** Now: the credit for the unused part of the period. */
  prorationLines: DraftLine[];
  finalInvoice: { invoiceId: string; number: string; currency: string; totalMinor: number; amountDueMinor: number } | null;
}
export const cancelUpdate = defineUpdate<CancelResult, [CancelRequest]>('cancel');

export const PAYMENT_TOKEN = /^(tok|pm)_[A-Za-z0-9_]{4,120}$/;

/** Stable error type names (ApplicationFailure.type). */
export const ErrorTypes = {
  INVALID_INPUT: 'INVALID_INPUT',
  PLAN_NOT_FOUND: 'PLAN_NOT_FOUND',
  NO_OFFER: 'NO_OFFER',
  ALREADY_ACTIVE: 'ALREADY_ACTIVE',
  NOT_A_LEAD: 'NOT_A_LEAD',
  ACTIVATION_IN_PROGRESS: 'ACTIVATION_IN_PROGRESS',
  INVALID_PAYMENT_METHOD: 'INVALID_PAYMENT_METHOD',
  PROVISIONING_FAILED: 'PROVISIONING_FAILED',
  NOT_ACTIVE: 'NOT_ACTIVE',
  SAME_PLAN: 'SAME_PLAN',
  INCOMPATIBLE_PLAN: 'INCOMPATIBLE_PLAN',
  DOWNGRADE_AT_PERIOD_END: 'DOWNGRADE_AT_PERIOD_END',
  PLAN_CHANGE_IN_PROGRESS: 'PLAN_CHANGE_IN_PROGRESS',
  NO_SCHEDULED_CHANGE: 'NO_SCHEDULED_CHANGE',
  CANCELLATION_PENDING: 'CANCELLATION_PENDING',
} as const;

/**
 * Sent by the usage API when a batch takes a metric's unbilled total across 80 % or 100 % of its
 * included allowance. Delivery is at least once (a retried or concurrent batch may send the same
 * crossing again), so the workflow de-duplicates by (period, metric, threshold).
 */
export interface UsageThresholdCrossed {
  metric: string;
  threshold: 80 | 100;
  /** Absent when the sender does not know the period: the workflow's current one applies. */
  periodNumber?: number;
  /** The unbilled total after the batch, an exact decimal string. */
  quantity: string;
  /** The plan's included allowance for the metric. */
  included: string;
  at: string;
}

export const usageThresholdSignal = defineSignal<[UsageThresholdCrossed]>('usageThresholdCrossed');

/**
 * Sent by the API when the gateway reports a chargeback on one of the customer's payments
 * (`chargeback.created` webhook). Delivery is at least once (a webhook redelivered after a
 * failed answer), so the workflow de-duplicates by `eventId`.
 */
export interface ChargebackNotice {
  /** Our payment id (`pay_…`). */
  paymentId: string;
  gatewayPaymentId: string;
  /** The gateway's id of the dispute. */
  chargebackId: string;
  /** The invoice the disputed payment paid. */
  invoiceId: string;
  amountMinor: number;
  currency: string;
  /** The gateway's reason code, e.g. "fraudulent". */
  reason: string;
  /** ISO instant by which evidence must reach the gateway. */
  evidenceDueBy: string;
  /** The webhook event that reported it. */
  eventId: string;
}

export const chargebackSignal = defineSignal<[ChargebackNotice]>('chargeback');

// ---------------------------------------------------------------------------------------------
// Customer communication (workflows/communication.ts)

/** What a message is about; customers may opt out of every category except `transactional`. */
export type MessageCategory = 'transactional' | 'usage' | 'nurture' | 'upgrade_offers' | 'marketing';

/** One message to one customer, delivered by a `communicationWorkflow` child. */
export interface CommunicationRequest {
  brandId: string;
  customerId: string;
  /** Same key, same message: the child's workflow id and the delivery record are unique by it. */
  dedupeKey: string;
  category: MessageCategory;
  /** A template of the brand's library, e.g. "welcome", "invoice-ready", "dispute-resolved". */
  template: string;
  /** The customer's email address at the time of the event. */
  recipient: string;
  data: Record<string, unknown>;
}

/** At most one communication workflow per message, ever: the id is the dedupe key. */
export function communicationWorkflowId(brandId: string, dedupeKey: string): string {
  return `message-${brandId}:${dedupeKey}`;
}

// ---------------------------------------------------------------------------------------------
// Disputes (workflows/dispute.ts)

/** Sent by the API after it recorded a dispute; the customer workflow starts its dispute workflow. */
export interface DisputeOpened {
  disputeId: string;
}
export const disputeOpenedSignal = defineSignal<[DisputeOpened]>('disputeOpened');

export interface DisputeWorkflowInput {
  brandId: string;
  customerId: string;
  disputeId: string;
  /** The customer's email, for messages about the dispute. */
  recipient: string;
  /** The customer's billing period when the dispute was opened: the abuse cap counts per period. */
  period: BillingPeriod | null;
  /** The customer workflow to tell when the dispute is resolved (`disputeResolvedSignal`). */
  parentWorkflowId: string;
}

export type DisputeOutcome = 'credited' | 'rejected' | 'won' | 'lost';

export interface DisputeResolved {
  disputeId: string;
  outcome: DisputeOutcome;
  /** What the customer was credited (0 when rejected or won). */
  creditedMinor: number;
}
/** Sent by a dispute workflow to its customer workflow when it ends. */
export const disputeResolvedSignal = defineSignal<[DisputeResolved]>('disputeResolved');

export function disputeWorkflowId(brandId: string, disputeId: string): string {
  return `dispute-${brandId}:${disputeId}`;
}

/** An operator's decision on an escalated dispute (POST /v1/disputes/:id/decision). */
export interface OperatorDecision {
  decision: 'accept' | 'reject';
  /** Accept part of the disputed amount; omitted means all of it. */
  amountMinor?: number;
  note?: string;
}
