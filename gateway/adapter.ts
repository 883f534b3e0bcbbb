/**
 * The payment gateway as Closeloop sees it: one interface that the sandbox gateway and Stripe
 * (and any later gateway) implement, so activities never know which one they talk to.
 *
 * Money is integers in minor units with an upper-case ISO currency code. A card decline is a
 * result (dunning decides what to do), never an exception; exceptions are for requests that did
 * not get an answer (retry them with the same idempotency key) or that the gateway refused as
 * malformed (do not retry).
 */

/** Why a charge was declined, as dunning needs it. */
export type DeclineCode =
  /** Retrying the same card will not help: ask the customer for a new payment method. */
  | 'hard_decline'
  /** The issuer may approve a later attempt: retry on the dunning schedule. */
  | 'soft_decline'
  /** Like a soft decline, but worth telling the customer why. */
  | 'insufficient_funds';

export interface ChargeRequest {
  /** A positive integer in the currency's minor unit. */
  amountMinor: number;
  /** ISO 4217, e.g. "USD" (any case; results are upper case). */
  currency: string;
  /** The saved payment method: a sandbox test token or the gateway's payment method id. */
  paymentMethod: string;
  /**
   * Derived from what is being paid (invoice id and attempt): the same key never charges twice,
   * whatever happens to the request or the caller.
   */
  idempotencyKey: string;
  description?: string;
  /** Stored with the payment and echoed in its webhooks (invoiceId, customerId, brandId, …). */
  metadata?: Record<string, string>;
  /** The gateway's customer the payment method is saved on, where the gateway needs one (Stripe). */
  customerRef?: string;
}

export interface ChargeResult {
  status: 'succeeded' | 'declined';
  /** The gateway's id of the payment; declined attempts have one too where the gateway records them. */
  paymentId?: string;
  declineCode?: DeclineCode;
  declineMessage?: string;
  /** The gateway's processing fee, when it is known at charge time. */
  feeMinor?: number;
}

export interface RefundRequest {
  paymentId: string;
  /** At most what is still refundable on the payment. */
  amountMinor: number;
  idempotencyKey: string;
  reason?: string;
}

export interface RefundResult {
  refundId: string;
  status: 'succeeded' | 'pending' | 'failed';
  paymentId: string;
  amountMinor: number;
  currency: string;
}

export interface Payment {
  paymentId: string;
  status: 'succeeded' | 'declined' | 'pending';
  amountMinor: number;
  currency: string;
  amountRefundedMinor: number;
  feeMinor?: number;
  declineCode?: DeclineCode;
  disputed: boolean;
  createdAt: string;
  metadata: Record<string, string>;
}

/**
 * One money movement on a settlement report. `amountMinor` is signed from the merchant's side
 * (payments positive, refunds and chargebacks negative); `feeMinor` is what the gateway kept.
 * A `fee` line is a fee on its own (e.g. a chargeback fee): amount 0, fee positive.
 * An `adjustment` is any other balance movement a real gateway reports, kept so that totals
 * always equal the gateway's payout.
 */
export interface SettlementLine {
  type: 'payment' | 'refund' | 'chargeback' | 'fee' | 'adjustment';
  id: string;
  paymentId?: string;
  amountMinor: number;
  feeMinor: number;
  currency: string;
  occurredAt: string;
}

/** Per currency: gross = Σ amountMinor, fees = Σ feeMinor, net = gross − fees (the payout). */
export interface SettlementTotals {
  gross: number;
  fees: number;
  net: number;
}

export interface SettlementReport {
  /** The UTC day, YYYY-MM-DD. */
  date: string;
  lines: SettlementLine[];
  totals: Record<string, SettlementTotals>;
}

interface EventBase {
  /** Unique per event: receivers de-duplicate by it. */
  id: string;
  occurredAt: string;
  /** The gateway's own name for the event, e.g. "charge.dispute.created". */
  gatewayType: string;
}

/** A verified webhook, normalised across gateways. */
export type GatewayEvent =
  | (EventBase & { type: 'payment.succeeded'; paymentId: string; amountMinor: number; currency: string; metadata: Record<string, string> })
  | (EventBase & { type: 'payment.declined'; paymentId: string; declineCode?: DeclineCode; metadata: Record<string, string> })
  | (EventBase & { type: 'refund.succeeded'; refundId: string; paymentId: string; amountMinor: number; currency: string })
  | (EventBase & {
      type: 'chargeback.created';
      chargebackId: string;
      paymentId: string;
      amountMinor: number;
      currency: string;
      reason: string;
      /** The disputed payment's metadata, where the gateway sends it. */
      metadata: Record<string, string>;
    })
  | (EventBase & {
      type: 'chargeback.closed';
      chargebackId: string;
      paymentId: string;
      /** Won: the money comes back to the merchant; lost: the customer keeps it. */
      outcome: 'won' | 'lost';
    })
  | (EventBase & { type: 'settlement.ready'; date: string })
  | (EventBase & { type: 'other'; data: unknown });

export type WebhookHeaders = Record<string, string | string[] | undefined>;

/** Our answer to a chargeback: the evidence the gateway forwards to the card network. */
export interface DisputeEvidenceRequest {
  /** The gateway's id of the dispute (the chargeback id of its webhook). */
  chargebackId: string;
  /** One submission per dispute: a retried request never submits twice. */
  idempotencyKey: string;
  evidence: {
    /** Who was billed, as the customer is known to us. */
    customerEmail?: string;
    /** What was sold, and when it was provided (ISO date). */
    productDescription: string;
    serviceDate?: string;
    /** Usage, delivery and payment records, as text the reviewer reads. */
    uncategorizedText: string;
  };
}

export interface DisputeEvidenceResult {
  chargebackId: string;
  /** The gateway's dispute status after the submission, e.g. "under_review". */
  status: string;
}

export interface PaymentGateway {
  /** Which adapter this is, for logs and reconciliation runs ("sandbox", "stripe"). */
  readonly name: string;
  charge(request: ChargeRequest): Promise<ChargeResult>;
  refund(request: RefundRequest): Promise<RefundResult>;
  /** null when the gateway has no such payment. */
  getPayment(paymentId: string): Promise<Payment | null>;
  settlementReport(request: { date: string }): Promise<SettlementReport>;
  /** Submits evidence on a chargeback; GatewayRequestError when the dispute is unknown or closed. */
  submitDisputeEvidence(request: DisputeEvidenceRequest): Promise<DisputeEvidenceResult>;
  /** Checks signature and timestamp of a webhook delivery and returns its event; throws WebhookVerificationError. */
  verifyWebhook(rawBody: Buffer, headers: WebhookHeaders): GatewayEvent;
}

/** Stable error type names, for `ApplicationFailure.type` and `nonRetryableErrorTypes`. */
export const GatewayErrorTypes = {
  /** No answer, a timeout, a 5xx or a rate limit: retry with the same idempotency key. */
  GATEWAY_UNAVAILABLE: 'GATEWAY_UNAVAILABLE',
  /** The gateway refused the request itself (bad parameters, key reused with other parameters, unknown payment): do not retry. */
  GATEWAY_REQUEST_REJECTED: 'GATEWAY_REQUEST_REJECTED',
  /** A webhook whose signature or timestamp does not check out. */
  WEBHOOK_VERIFICATION_FAILED: 'WEBHOOK_VERIFICATION_FAILED',
} as const;

/** Error types a retry cannot fix. */
export const NON_RETRYABLE_GATEWAY_ERROR_TYPES: readonly string[] = [
  GatewayErrorTypes.GATEWAY_REQUEST_REJECTED,
  GatewayErrorTypes.WEBHOOK_VERIFICATION_FAILED,
];

export abstract class GatewayError extends Error {
  abstract readonly type: string;
  abstract readonly retryable: boolean;
  constructor(
    message: string,
    /** The gateway's own code, e.g. "timeout", "idempotency_key_reused", "amount_too_large". */
    readonly code: string,
    /** HTTP status of the gateway's answer, when there was one. */
    readonly httpStatus?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The request may or may not have reached the gateway: only a retry with the same idempotency
 * key is safe, and it returns the original result if the first attempt did go through.
 */
export class GatewayUnavailableError extends GatewayError {
  override name = 'GatewayUnavailableError';
  readonly type = GatewayErrorTypes.GATEWAY_UNAVAILABLE;
  readonly retryable = true;
}

export class GatewayRequestError extends GatewayError {
  override name = 'GatewayRequestError';
  readonly type = GatewayErrorTypes.GATEWAY_REQUEST_REJECTED;
  readonly retryable = false;
}

export type WebhookRejection = 'missing_signature' | 'malformed_signature' | 'bad_signature' | 'timestamp_outside_tolerance' | 'malformed_payload';

export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
  readonly type = GatewayErrorTypes.WEBHOOK_VERIFICATION_FAILED;
  readonly retryable = false;
  constructor(
    readonly reason: WebhookRejection,
    message: string,
  ) {
    super(message);
  }
}

/** Webhooks older or newer than this (by their signed timestamp) are refused as possible replays. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/** Case-insensitive single header value. */
export function headerValue(headers: WebhookHeaders, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== wanted || value === undefined) continue;
    return Array.isArray(value) ? value.join(',') : value;
  }
  return undefined;
}

export function settlementTotals(lines: readonly SettlementLine[]): Record<string, SettlementTotals> {
  const totals: Record<string, SettlementTotals> = {};
  for (const line of lines) {
    const t = (totals[line.currency] ??= { gross: 0, fees: 0, net: 0 });
    t.gross += line.amountMinor;
    t.fees += line.feeMinor;
    t.net = t.gross - t.fees;
  }
  return totals;
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The [start, end) instants of a UTC day given as YYYY-MM-DD, or undefined when it is not a real date. */
export function utcDayRange(date: string): { start: Date; end: Date } | undefined {
  const m = DAY.exec(date);
  if (!m) return undefined;
  const start = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (Number.isNaN(start.getTime()) || start.toISOString().slice(0, 10) !== date) return undefined;
  return { start, end: new Date(start.getTime() + 86_400_000) };
}
