/**
 * The PaymentGateway adapter for Stripe, through the official `stripe` client. Charges are
 * PaymentIntents created and confirmed off-session in one idempotent request; the settlement
 * report is the day's balance transactions; webhooks are checked with Stripe's own verifier.
 */
import Stripe from 'stripe';
import { ConfigError } from '../infra/config';
import {
  type ChargeRequest,
  type ChargeResult,
  type DeclineCode,
  type DisputeEvidenceRequest,
  type DisputeEvidenceResult,
  type GatewayEvent,
  GatewayRequestError,
  GatewayUnavailableError,
  headerValue,
  type Payment,
  type PaymentGateway,
  type RefundRequest,
  type RefundResult,
  type SettlementLine,
  type SettlementReport,
  settlementTotals,
  utcDayRange,
  WEBHOOK_TOLERANCE_SECONDS,
  type WebhookHeaders,
  WebhookVerificationError,
} from './adapter';

export interface StripeGatewayOptions {
  secretKey: string;
  webhookSecret: string;
  /** Another API endpoint, e.g. stripe-mock at http://127.0.0.1:12111 (default: Stripe's). */
  apiBase?: string;
  /** Replaces the client's transport (tests record requests with it). */
  httpClient?: Stripe.HttpClient;
  /** Per request (default 30 000 ms). */
  timeoutMs?: number;
  /** The client's own retries of network failures and 5xx, with our idempotency key (default 2). */
  maxNetworkRetries?: number;
  /** For the webhook replay window (default: the system clock). */
  now?: () => Date;
}

/** Reads STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET and the optional STRIPE_API_BASE, STRIPE_TIMEOUT_MS. */
export function stripeOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): StripeGatewayOptions {
  const required = (name: string) => {
    const value = env[name]?.trim();
    if (!value) throw new ConfigError(`${name} must be set to use the Stripe gateway`);
    return value;
  };
  const secretKey = required('STRIPE_SECRET_KEY');
  if (!/^(sk|rk)_(test|live)_/.test(secretKey)) throw new ConfigError('STRIPE_SECRET_KEY must be a Stripe secret key (sk_test_…, sk_live_…, or a restricted rk_… key)');
  const webhookSecret = required('STRIPE_WEBHOOK_SECRET');
  const apiBase = env.STRIPE_API_BASE?.trim() || undefined;
  if (apiBase && !/^https?:\/\/[^/]+\/?$/.test(apiBase)) throw new ConfigError(`STRIPE_API_BASE must be a base URL like http://127.0.0.1:12111, got "${apiBase}"`);
  const rawTimeout = env.STRIPE_TIMEOUT_MS?.trim();
  if (rawTimeout && !/^[1-9]\d*$/.test(rawTimeout)) throw new ConfigError(`STRIPE_TIMEOUT_MS must be a positive integer of milliseconds, got "${rawTimeout}"`);
  return { secretKey, webhookSecret, apiBase, timeoutMs: rawTimeout ? Number(rawTimeout) : undefined };
}

const HARD_DECLINES = new Set([
  'authentication_required',
  'card_not_supported',
  'currency_not_supported',
  'do_not_try_again',
  'expired_card',
  'fraudulent',
  'incorrect_cvc',
  'incorrect_number',
  'invalid_account',
  'invalid_cvc',
  'invalid_expiry_month',
  'invalid_expiry_year',
  'invalid_number',
  'lost_card',
  'merchant_blacklist',
  'new_account_information_available',
  'pickup_card',
  'restricted_card',
  'revocation_of_all_authorizations',
  'revocation_of_authorization',
  'security_violation',
  'stolen_card',
  'stop_payment_order',
  'transaction_not_allowed',
]);

/**
 * Stripe's decline_code (or error code) to dunning's view: declines that a later attempt on the
 * same card cannot fix are hard; insufficient funds is its own case; everything else, including
 * codes Stripe adds later, is soft, so dunning's bounded schedule still gets to try again.
 */
export function declineCodeFromStripe(code: string | null | undefined): DeclineCode {
  if (code === 'insufficient_funds') return 'insufficient_funds';
  return code && HARD_DECLINES.has(code) ? 'hard_decline' : 'soft_decline';
}

type StripeError = InstanceType<typeof Stripe.errors.StripeError>;

function isStripeError(err: unknown): err is StripeError {
  return err instanceof Stripe.errors.StripeError;
}

/** Any failure of a Stripe call except a card decline, as our two error kinds. */
function gatewayError(err: unknown, what: string): Error {
  if (!isStripeError(err)) return err as Error;
  const message = `Stripe refused ${what}: ${err.message}`;
  const status = err.statusCode;
  if (err instanceof Stripe.errors.StripeIdempotencyError) return new GatewayRequestError(message, 'idempotency_key_reused', status, { cause: err });
  if (err instanceof Stripe.errors.StripeConnectionError) {
    return new GatewayUnavailableError(`Stripe unreachable for ${what}: ${err.message}`, 'network_error', status, { cause: err });
  }
  // Another request with the same key is still running at Stripe: ask again later for its result.
  if (status === 409) return new GatewayUnavailableError(message, 'request_in_progress', status, { cause: err });
  if (err instanceof Stripe.errors.StripeRateLimitError || status === 429) return new GatewayUnavailableError(message, 'rate_limited', status, { cause: err });
  if (err instanceof Stripe.errors.StripeAPIError || (status !== undefined && status >= 500)) {
    return new GatewayUnavailableError(message, 'server_error', status, { cause: err });
  }
  return new GatewayRequestError(message, err.code ?? err.type, status, { cause: err });
}

const idOf = (v: string | { id: string } | null | undefined): string | undefined => (typeof v === 'string' ? v : (v?.id ?? undefined));
const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();
const upper = (currency: string) => currency.toUpperCase();

function feeOf(pi: Stripe.PaymentIntent): number | undefined {
  const charge = pi.latest_charge;
  if (!charge || typeof charge === 'string') return undefined;
  const bt = charge.balance_transaction;
  return bt && typeof bt !== 'string' ? bt.fee : undefined;
}

/** The PaymentIntent a balance transaction belongs to, through its expanded source. */
function paymentIdOf(bt: Stripe.BalanceTransaction): string | undefined {
  const source = bt.source;
  if (!source || typeof source === 'string') return undefined;
  const s = source as unknown as { id: string; object?: string; payment_intent?: string | { id: string } | null; charge?: string | { id: string } | null };
  return idOf(s.payment_intent) ?? idOf(s.charge) ?? (s.object === 'charge' ? s.id : undefined);
}

/** Balance transactions as settlement lines; payouts are the settlement itself, not a line of it. */
export function settlementLinesFromStripe(transactions: readonly Stripe.BalanceTransaction[]): SettlementLine[] {
  const lines: SettlementLine[] = [];
  for (const bt of transactions) {
    const common = { id: bt.id, currency: upper(bt.currency), occurredAt: iso(bt.created) };
    const paymentId = paymentIdOf(bt);
    const withPayment = paymentId ? { paymentId } : {};
    switch (bt.reporting_category) {
      case 'payout':
      case 'payout_reversal':
        break;
      case 'charge':
        lines.push({ type: 'payment', ...common, ...withPayment, amountMinor: bt.amount, feeMinor: bt.fee });
        break;
      case 'refund':
        lines.push({ type: 'refund', ...common, ...withPayment, amountMinor: bt.amount, feeMinor: bt.fee });
        break;
      case 'dispute':
        lines.push({ type: 'chargeback', ...common, ...withPayment, amountMinor: bt.amount, feeMinor: 0 });
        if (bt.fee !== 0) lines.push({ type: 'fee', ...common, id: `fee_${bt.id}`, ...withPayment, amountMinor: 0, feeMinor: bt.fee });
        break;
      case 'fee':
        // A Stripe fee is a negative amount; as a fee line it is a positive fee with the same net.
        lines.push({ type: 'fee', ...common, ...withPayment, amountMinor: 0, feeMinor: bt.fee - bt.amount });
        break;
      default:
        lines.push({ type: 'adjustment', ...common, ...withPayment, amountMinor: bt.amount, feeMinor: bt.fee });
    }
  }
  return lines;
}

const REFUND_REASONS: readonly string[] = ['duplicate', 'fraudulent', 'requested_by_customer'];

function refundStatus(status: string | null): RefundResult['status'] {
  if (status === 'succeeded') return 'succeeded';
  if (status === 'failed' || status === 'canceled') return 'failed';
  return 'pending';
}

export function createStripeGateway(opts: StripeGatewayOptions): PaymentGateway {
  const base = opts.apiBase ? new URL(opts.apiBase) : undefined;
  const stripe = new Stripe(opts.secretKey, {
    maxNetworkRetries: opts.maxNetworkRetries ?? 2,
    timeout: opts.timeoutMs ?? 30_000,
    ...(base ? { host: base.hostname, port: base.port || (base.protocol === 'https:' ? 443 : 80), protocol: base.protocol === 'https:' ? 'https' : 'http' } : {}),
    ...(opts.httpClient ? { httpClient: opts.httpClient } : {}),
  });
  const now = opts.now ?? (() => new Date());

  function chargeResult(pi: Stripe.PaymentIntent): ChargeResult {
    switch (pi.status) {
      case 'succeeded': {
        const fee = feeOf(pi);
        return { status: 'succeeded', paymentId: pi.id, ...(fee === undefined ? {} : { feeMinor: fee }) };
      }
      case 'requires_payment_method': {
        const error = pi.last_payment_error;
        return {
          status: 'declined',
          paymentId: pi.id,
          declineCode: declineCodeFromStripe(error?.decline_code || error?.code),
          ...(error?.message ? { declineMessage: error.message } : {}),
        };
      }
      case 'requires_action':
      case 'requires_confirmation':
        // Off-session there is nobody to authenticate: the customer has to come back.
        return { status: 'declined', paymentId: pi.id, declineCode: 'hard_decline', declineMessage: 'the card needs the customer to authenticate the payment' };
      default:
        throw new GatewayRequestError(`Stripe PaymentIntent ${pi.id} is "${pi.status}", which Closeloop's off-session card charges do not expect`, 'unsupported_payment_state');
    }
  }

  function toPayment(pi: Stripe.PaymentIntent): Payment {
    const charge = pi.latest_charge && typeof pi.latest_charge !== 'string' ? pi.latest_charge : undefined;
    const fee = feeOf(pi);
    const declined = pi.status === 'requires_payment_method' && pi.last_payment_error;
    return {
      paymentId: pi.id,
      status: pi.status === 'succeeded' ? 'succeeded' : declined ? 'declined' : 'pending',
      amountMinor: pi.amount,
      currency: upper(pi.currency),
      amountRefundedMinor: charge?.amount_refunded ?? 0,
      ...(fee === undefined ? {} : { feeMinor: fee }),
      ...(declined ? { declineCode: declineCodeFromStripe(pi.last_payment_error?.decline_code || pi.last_payment_error?.code) } : {}),
      disputed: charge?.disputed ?? false,
      createdAt: iso(pi.created),
      metadata: { ...pi.metadata },
    };
  }

  function toEvent(event: Stripe.Event): GatewayEvent {
    const base = { id: event.id, occurredAt: iso(event.created), gatewayType: event.type };
    switch (event.type) {
      case 'payment_intent.succeeded': {
        const pi = event.data.object;
        return { ...base, type: 'payment.succeeded', paymentId: pi.id, amountMinor: pi.amount_received, currency: upper(pi.currency), metadata: { ...pi.metadata } };
      }
      case 'payment_intent.payment_failed': {
        const pi = event.data.object;
        return {
          ...base,
          type: 'payment.declined',
          paymentId: pi.id,
          declineCode: declineCodeFromStripe(pi.last_payment_error?.decline_code || pi.last_payment_error?.code),
          metadata: { ...pi.metadata },
        };
      }
      case 'refund.created': {
        const refund = event.data.object;
        if (refund.status !== 'succeeded') break;
        return {
          ...base,
          type: 'refund.succeeded',
          refundId: refund.id,
          paymentId: idOf(refund.payment_intent) ?? idOf(refund.charge) ?? '',
          amountMinor: refund.amount,
          currency: upper(refund.currency),
        };
      }
      case 'charge.dispute.created': {
        const dispute = event.data.object;
        return {
          ...base,
          type: 'chargeback.created',
          chargebackId: dispute.id,
          paymentId: idOf(dispute.payment_intent) ?? idOf(dispute.charge) ?? '',
          amountMinor: dispute.amount,
          currency: upper(dispute.currency),
          reason: dispute.reason,
          metadata: { ...dispute.metadata },
        };
      }
      case 'charge.dispute.closed': {
        const dispute = event.data.object;
        // "warning_closed" (an inquiry that never became a chargeback) keeps the money too.
        return {
          ...base,
          type: 'chargeback.closed',
          chargebackId: dispute.id,
          paymentId: idOf(dispute.payment_intent) ?? idOf(dispute.charge) ?? '',
          outcome: dispute.status === 'won' || dispute.status === 'warning_closed' ? 'won' : 'lost',
        };
      }
      default:
        break;
    }
    return { ...base, type: 'other', data: event.data.object };
  }

  return {
    name: 'stripe',

    async charge(req: ChargeRequest): Promise<ChargeResult> {
      try {
        const pi = await stripe.paymentIntents.create(
          {
            amount: req.amountMinor,
            currency: req.currency.toLowerCase(),
            payment_method: req.paymentMethod,
            ...(req.customerRef ? { customer: req.customerRef } : {}),
            confirm: true,
            off_session: true,
            // Off-session there is no page to redirect to, so only methods that need none.
            automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
            ...(req.description ? { description: req.description } : {}),
            metadata: req.metadata ?? {},
            expand: ['latest_charge.balance_transaction'],
          },
          { idempotencyKey: req.idempotencyKey },
        );
        return chargeResult(pi);
      } catch (err) {
        if (err instanceof Stripe.errors.StripeCardError) {
          const paymentId = (err.raw as { payment_intent?: { id?: string } } | undefined)?.payment_intent?.id ?? err.payment_intent?.id;
          return {
            status: 'declined',
            ...(paymentId ? { paymentId } : {}),
            declineCode: declineCodeFromStripe(err.decline_code || err.code),
            declineMessage: err.message,
          };
        }
        throw gatewayError(err, `a charge of ${req.amountMinor} ${req.currency}`);
      }
    },

    async refund(req: RefundRequest): Promise<RefundResult> {
      try {
        const refund = await stripe.refunds.create(
          {
            payment_intent: req.paymentId,
            amount: req.amountMinor,
            ...(req.reason && REFUND_REASONS.includes(req.reason) ? { reason: req.reason as Stripe.RefundCreateParams.Reason } : {}),
            ...(req.reason ? { metadata: { reason: req.reason.slice(0, 500) } } : {}),
          },
          { idempotencyKey: req.idempotencyKey },
        );
        return {
          refundId: refund.id,
          status: refundStatus(refund.status),
          paymentId: idOf(refund.payment_intent) ?? req.paymentId,
          amountMinor: refund.amount,
          currency: upper(refund.currency),
        };
      } catch (err) {
        throw gatewayError(err, `a refund of ${req.amountMinor} on ${req.paymentId}`);
      }
    },

    async getPayment(paymentId: string): Promise<Payment | null> {
      try {
        return toPayment(await stripe.paymentIntents.retrieve(paymentId, { expand: ['latest_charge.balance_transaction'] }));
      } catch (err) {
        if (isStripeError(err) && err.statusCode === 404) return null;
        throw gatewayError(err, `reading payment ${paymentId}`);
      }
    },

    async settlementReport({ date }: { date: string }): Promise<SettlementReport> {
      const range = utcDayRange(date);
      if (!range) throw new GatewayRequestError(`settlement date must be a real day as YYYY-MM-DD, got "${date}"`, 'parameter_invalid');
      const transactions: Stripe.BalanceTransaction[] = [];
      try {
        const list = stripe.balanceTransactions.list({
          created: { gte: range.start.getTime() / 1000, lt: range.end.getTime() / 1000 },
          limit: 100,
          expand: ['data.source'],
        });
        for await (const bt of list) transactions.push(bt);
      } catch (err) {
        throw gatewayError(err, `the balance transactions of ${date}`);
      }
      const lines = settlementLinesFromStripe(transactions);
      return { date, lines, totals: settlementTotals(lines) };
    },

    async submitDisputeEvidence(req: DisputeEvidenceRequest): Promise<DisputeEvidenceResult> {
      try {
        // submit: true sends the evidence to the card network at once; Stripe allows one submission.
        const dispute = await stripe.disputes.update(
          req.chargebackId,
          {
            evidence: {
              product_description: req.evidence.productDescription,
              uncategorized_text: req.evidence.uncategorizedText,
              ...(req.evidence.customerEmail ? { customer_email_address: req.evidence.customerEmail } : {}),
              ...(req.evidence.serviceDate ? { service_date: req.evidence.serviceDate } : {}),
            },
            submit: true,
          },
          { idempotencyKey: req.idempotencyKey },
        );
        return { chargebackId: dispute.id, status: dispute.status };
      } catch (err) {
        throw gatewayError(err, `evidence on dispute ${req.chargebackId}`);
      }
    },

    verifyWebhook(rawBody: Buffer, headers: WebhookHeaders): GatewayEvent {
      const header = headerValue(headers, 'stripe-signature');
      if (!header) throw new WebhookVerificationError('missing_signature', 'no Stripe-Signature header');
      let event: Stripe.Event;
      try {
        event = stripe.webhooks.constructEvent(rawBody, header, opts.webhookSecret, WEBHOOK_TOLERANCE_SECONDS, undefined, now().getTime());
      } catch (err) {
        if (!(err instanceof Stripe.errors.StripeSignatureVerificationError)) {
          throw new WebhookVerificationError('malformed_payload', `Stripe webhook body is not an event: ${(err as Error).message}`);
        }
        const reason = /tolerance/i.test(err.message)
          ? 'timestamp_outside_tolerance'
          : /extract timestamp|expected scheme/i.test(err.message)
            ? 'malformed_signature'
            : 'bad_signature';
        throw new WebhookVerificationError(reason, err.message);
      }
      return toEvent(event);
    },
  };
}
