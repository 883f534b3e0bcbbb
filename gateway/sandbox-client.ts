/**
 * The PaymentGateway adapter for the sandbox gateway (`sandbox-server.ts`), over HTTP. Anything
 * that leaves us not knowing whether the gateway acted — a timeout, a dropped connection, a 5xx,
 * a 429 — is a GatewayUnavailableError, so the caller retries with the same idempotency key.
 */
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
  utcDayRange,
  type WebhookHeaders,
  WebhookVerificationError,
} from './adapter';
import { SIGNATURE_HEADER, verifySignature } from './webhook-signature';

export interface SandboxGatewayClientOptions {
  baseUrl: string;
  webhookSecret: string;
  /** Per request, body included (default 10 000 ms). */
  timeoutMs?: number;
  /** When the sandbox was started with one. */
  apiKey?: string;
  /** For the webhook replay window (default: the system clock). */
  now?: () => Date;
  /** Replay window for webhooks in seconds (default 300). */
  webhookToleranceSeconds?: number;
}

interface WireError {
  error?: { type?: string; code?: string; decline_code?: string; message?: string; charge?: string };
}

interface WireCharge {
  id: string;
  status: 'succeeded' | 'declined';
  amount: number;
  currency: string;
  fee: number | null;
  amount_refunded: number;
  metadata: Record<string, string>;
  created: string;
  decline_code: DeclineCode | null;
  disputed: boolean;
}

interface WireRefund {
  id: string;
  status: 'succeeded' | 'pending' | 'failed';
  payment: string;
  amount: number;
  currency: string;
}

interface WireSettlement {
  date: string;
  lines: { type: SettlementLine['type']; id: string; payment: string | null; amount: number; fee: number; currency: string; occurred_at: string }[];
  totals: SettlementReport['totals'];
}

interface WireEvent {
  id: string;
  type: string;
  created: string;
  data: { object: Record<string, unknown> };
}

const DECLINE_CODES: readonly string[] = ['hard_decline', 'soft_decline', 'insufficient_funds'];

function asDeclineCode(code: unknown): DeclineCode {
  return typeof code === 'string' && DECLINE_CODES.includes(code) ? (code as DeclineCode) : 'soft_decline';
}

export function createSandboxGateway(opts: SandboxGatewayClientOptions): PaymentGateway {
  const baseUrl = opts.baseUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const now = opts.now ?? (() => new Date());

  /** Sends one request; returns status and parsed body, or throws GatewayUnavailableError when there is no full answer. */
  async function send(method: 'GET' | 'POST', path: string, body?: unknown, idempotencyKey?: string): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (idempotencyKey !== undefined) headers['idempotency-key'] = idempotencyKey;
    if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
    const what = `${method} ${path}`;
    try {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (res.status >= 500 || res.status === 429) {
        throw new GatewayUnavailableError(`sandbox gateway answered ${what} with HTTP ${res.status}`, res.status === 429 ? 'rate_limited' : 'server_error', res.status);
      }
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        throw new GatewayUnavailableError(`sandbox gateway answered ${what} with HTTP ${res.status} and a body that is not JSON`, 'bad_response', res.status);
      }
      return { status: res.status, json };
    } catch (err) {
      if (err instanceof GatewayUnavailableError) throw err;
      const name = (err as Error).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new GatewayUnavailableError(`sandbox gateway did not answer ${what} within ${timeoutMs} ms`, 'timeout', undefined, { cause: err });
      }
      throw new GatewayUnavailableError(`sandbox gateway unreachable for ${what}: ${(err as Error).message}`, 'network_error', undefined, { cause: err });
    }
  }

  function rejected(what: string, status: number, json: unknown): GatewayRequestError {
    const error = (json as WireError | undefined)?.error;
    return new GatewayRequestError(`sandbox gateway refused ${what}: ${error?.message ?? `HTTP ${status}`}`, error?.code ?? `http_${status}`, status);
  }

  const toPayment = (c: WireCharge): Payment => ({
    paymentId: c.id,
    status: c.status,
    amountMinor: c.amount,
    currency: c.currency,
    amountRefundedMinor: c.amount_refunded,
    ...(c.fee === null ? {} : { feeMinor: c.fee }),
    ...(c.decline_code ? { declineCode: c.decline_code } : {}),
    disputed: c.disputed,
    createdAt: c.created,
    metadata: c.metadata,
  });

  function toEvent(e: WireEvent): GatewayEvent {
    const base = { id: e.id, occurredAt: e.created, gatewayType: e.type };
    const o = e.data.object;
    const str = (v: unknown) => String(v);
    const num = (v: unknown) => Number(v);
    const meta = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, string>) : {});
    switch (e.type) {
      case 'charge.succeeded':
        return { ...base, type: 'payment.succeeded', paymentId: str(o.id), amountMinor: num(o.amount), currency: str(o.currency), metadata: meta(o.metadata) };
      case 'charge.failed':
        return { ...base, type: 'payment.declined', paymentId: str(o.id), declineCode: asDeclineCode(o.decline_code), metadata: meta(o.metadata) };
      case 'refund.succeeded':
        return { ...base, type: 'refund.succeeded', refundId: str(o.id), paymentId: str(o.payment), amountMinor: num(o.amount), currency: str(o.currency) };
      case 'charge.dispute.created':
        return {
          ...base,
          type: 'chargeback.created',
          chargebackId: str(o.id),
          paymentId: str(o.payment),
          amountMinor: num(o.amount),
          currency: str(o.currency),
          reason: str(o.reason),
          metadata: meta(o.metadata),
        };
      case 'charge.dispute.closed':
        return { ...base, type: 'chargeback.closed', chargebackId: str(o.id), paymentId: str(o.payment), outcome: o.status === 'won' ? 'won' : 'lost' };
      case 'settlement.report_ready':
        return { ...base, type: 'settlement.ready', date: str(o.date) };
      default:
        return { ...base, type: 'other', data: o };
    }
  }

  return {
    name: 'sandbox',

    async charge(req: ChargeRequest): Promise<ChargeResult> {
      const { status, json } = await send(
        'POST',
        '/v1/charges',
        { amount: req.amountMinor, currency: req.currency, payment_method: req.paymentMethod, description: req.description ?? null, metadata: req.metadata ?? {} },
        req.idempotencyKey,
      );
      if (status === 200) {
        const c = json as WireCharge;
        return { status: 'succeeded', paymentId: c.id, ...(c.fee === null ? {} : { feeMinor: c.fee }) };
      }
      if (status === 402) {
        const error = (json as WireError).error;
        return {
          status: 'declined',
          ...(error?.charge ? { paymentId: error.charge } : {}),
          declineCode: asDeclineCode(error?.decline_code),
          ...(error?.message ? { declineMessage: error.message } : {}),
        };
      }
      throw rejected(`a charge of ${req.amountMinor} ${req.currency}`, status, json);
    },

    async refund(req: RefundRequest): Promise<RefundResult> {
      const { status, json } = await send('POST', '/v1/refunds', { payment: req.paymentId, amount: req.amountMinor, reason: req.reason ?? null }, req.idempotencyKey);
      if (status !== 200) throw rejected(`a refund of ${req.amountMinor} on ${req.paymentId}`, status, json);
      const r = json as WireRefund;
      return { refundId: r.id, status: r.status, paymentId: r.payment, amountMinor: r.amount, currency: r.currency };
    },

    async getPayment(paymentId: string): Promise<Payment | null> {
      const { status, json } = await send('GET', `/v1/charges/${encodeURIComponent(paymentId)}`);
      if (status === 404) return null;
      if (status !== 200) throw rejected(`reading payment ${paymentId}`, status, json);
      return toPayment(json as WireCharge);
    },

    async settlementReport({ date }: { date: string }): Promise<SettlementReport> {
      if (!utcDayRange(date)) throw new GatewayRequestError(`settlement date must be a real day as YYYY-MM-DD, got "${date}"`, 'parameter_invalid');
      const { status, json } = await send('GET', `/v1/settlements/${date}`);
      if (status !== 200) throw rejected(`the settlement report for ${date}`, status, json);
      const s = json as WireSettlement;
      return {
        date: s.date,
        lines: s.lines.map((l) => ({
          type: l.type,
          id: l.id,
          ...(l.payment ? { paymentId: l.payment } : {}),
          amountMinor: l.amount,
          feeMinor: l.fee,
          currency: l.currency,
          occurredAt: l.occurred_at,
        })),
        totals: s.totals,
      };
    },

    async submitDisputeEvidence(req: DisputeEvidenceRequest): Promise<DisputeEvidenceResult> {
      const evidence: Record<string, string> = {
        product_description: req.evidence.productDescription,
        uncategorized_text: req.evidence.uncategorizedText,
        ...(req.evidence.customerEmail ? { customer_email_address: req.evidence.customerEmail } : {}),
        ...(req.evidence.serviceDate ? { service_date: req.evidence.serviceDate } : {}),
      };
      const { status, json } = await send('POST', `/v1/disputes/${encodeURIComponent(req.chargebackId)}/evidence`, { evidence }, req.idempotencyKey);
      if (status !== 200) throw rejected(`evidence on dispute ${req.chargebackId}`, status, json);
      const d = json as { id: string; status: string };
      return { chargebackId: d.id, status: d.status };
    },

    verifyWebhook(rawBody: Buffer, headers: WebhookHeaders): GatewayEvent {
      verifySignature({
        secret: opts.webhookSecret,
        rawBody,
        header: headerValue(headers, SIGNATURE_HEADER),
        nowSeconds: Math.floor(now().getTime() / 1000),
        toleranceSeconds: opts.webhookToleranceSeconds,
      });
      let event: WireEvent;
      try {
        event = JSON.parse(rawBody.toString('utf8')) as WireEvent;
      } catch {
        throw new WebhookVerificationError('malformed_payload', 'webhook body is not JSON');
      }
      if (typeof event?.id !== 'string' || typeof event.type !== 'string' || typeof event.data?.object !== 'object' || event.data.object === null) {
        throw new WebhookVerificationError('malformed_payload', 'webhook body lacks id, type or data.object');
      }
      return toEvent(event);
    },
  };
}
