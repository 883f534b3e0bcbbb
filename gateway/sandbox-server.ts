/**
 * The sandbox payment gateway: a real HTTP service with its own persistent state that behaves
 * the way a card gateway does where it hurts — idempotency keys, declines, slow answers, dropped
 * connections, chargebacks, fees, daily settlement reports and signed webhooks — so Closeloop's
 * collections can be tested end to end without a network. Its wire format is Stripe-like
 * (snake_case, 402 for a decline); `sandbox-client.ts` is the adapter that speaks it.
 *
 * Test payment tokens (a token may carry a suffix, `tok_soft_decline_cus42`, to get its own
 * attempt counter):
 *   tok_visa               approved
 *   tok_hard_decline       declined, hard_decline
 *   tok_soft_decline       declined (soft_decline) for the first `softDeclineAttempts` (2) attempts
 *                          with the same token, amount and currency, then approved
 *   tok_insufficient_funds declined, insufficient_funds
 *   tok_timeout            approved at once, but answered only after `timeoutDelayMs` (35 s): a
 *                          client that gives up and retries with the same key gets the original success
 *   tok_network_failure    approved, then the connection is dropped without an answer; a retry with
 *                          the same key gets the original success
 *   tok_chargeback         approved; `chargebackAfterMs` later the payment is disputed
 *                          (`charge.dispute.created` webhook, chargeback and fee on the settlement report)
 * Any other token is refused as an invalid payment method (400).
 *
 * Idempotency: POST /v1/charges and /v1/refunds need an Idempotency-Key. The first answer that did
 * something (an approval, a decline, a refund) is stored and replayed for the same key and
 * parameters; the same key with other parameters is a 409. A request refused before anything
 * happened (bad parameters, an over-refund) is not stored, so it can be corrected and resent.
 *
 * Fees: 2.9 % + 30 minor units per successful charge, rounded half away from zero; refunds do not
 * return the fee; a chargeback costs `chargebackFeeMinor` (1500) more.
 *
 * Test control (no real gateway has these): GET /v1/_sandbox/charges, GET /v1/_sandbox/events,
 * PUT /v1/_sandbox/webhook {url}, POST /v1/_sandbox/outage {requests} (the next n API requests
 * answer 503 and do nothing), POST /v1/_sandbox/settlements/:date/ready (emits settlement.report_ready).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { z } from 'zod';
import { createLogger, type Logger } from '../infra/logger';
import { type DeclineCode, type SettlementLine, settlementTotals, utcDayRange } from './adapter';
import { SIGNATURE_HEADER, signatureHeader } from './webhook-signature';

export const TEST_TOKENS = {
  approve: 'tok_visa',
  hardDecline: 'tok_hard_decline',
  softDecline: 'tok_soft_decline',
  insufficientFunds: 'tok_insufficient_funds',
  timeout: 'tok_timeout',
  networkFailure: 'tok_network_failure',
  chargeback: 'tok_chargeback',
} as const;

type Behaviour = keyof typeof TEST_TOKENS;

/** What a test token does; a token may carry a `_suffix` after the base name. */
export function tokenBehaviour(token: string): Behaviour | undefined {
  for (const [behaviour, base] of Object.entries(TEST_TOKENS) as [Behaviour, string][]) {
    if (token === base || token.startsWith(`${base}_`)) return behaviour;
  }
  return undefined;
}

/** 2.9 % + 30 minor units, the 2.9 % rounded half away from zero in integer arithmetic. */
export function sandboxFeeMinor(amountMinor: number): number {
  const permille = BigInt(amountMinor) * 29n;
  const magnitude = (2n * (permille < 0n ? -permille : permille) + 1000n) / 2000n;
  return Number(permille < 0n ? -magnitude : magnitude) + 30;
}

export interface WebhookRetryOptions {
  /** Delay before the first redelivery; doubles each time. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Deliveries (first included) before an event is marked failed. */
  maxAttempts: number;
  /** How long one delivery may take before it counts as failed. */
  timeoutMs: number;
}

export interface SandboxGatewayOptions {
  /** 0 or undefined: a free port. */
  port?: number;
  host?: string;
  /** JSON file holding payments, idempotency keys and undelivered webhooks across restarts; none: memory only. */
  stateFile?: string;
  /** Where webhooks go; without one they wait (see setWebhookUrl). */
  webhookUrl?: string;
  webhookSecret: string;
  /** When set, every request needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Business time (payment, refund, dispute timestamps; settlement days). Timers and signature timestamps use real time. */
  clock?: () => Date;
  /** How long tok_timeout holds its answer (default 35 000 ms). */
  timeoutDelayMs?: number;
  /** How long after a tok_chargeback payment its dispute opens (default 10 000 ms). */
  chargebackAfterMs?: number;
  /** Declines of tok_soft_decline before it approves (default 2). */
  softDeclineAttempts?: number;
  chargebackFeeMinor?: number;
  webhookRetry?: Partial<WebhookRetryOptions>;
  logger?: Logger;
}

interface StoredCharge {
  id: string;
  status: 'succeeded' | 'declined';
  amount: number;
  currency: string;
  fee: number | null;
  amountRefunded: number;
  paymentMethod: string;
  description: string | null;
  metadata: Record<string, string>;
  idempotencyKey: string;
  created: string;
  declineCode: DeclineCode | null;
  declineMessage: string | null;
  refunds: string[];
  disputeId: string | null;
  /** Real-time epoch ms at which a tok_chargeback payment gets disputed. */
  chargebackDueAt: number | null;
}

interface StoredRefund {
  id: string;
  charge: string;
  amount: number;
  currency: string;
  reason: string | null;
  created: string;
  idempotencyKey: string;
}

interface StoredDispute {
  id: string;
  charge: string;
  amount: number;
  currency: string;
  fee: number;
  reason: string;
  created: string;
  /** The merchant's evidence, once submitted (absent in state files written before evidence existed). */
  evidence?: Record<string, string>;
  evidenceSubmittedAt?: string;
  /** The card network's verdict, once a test closes the dispute. */
  closedAs?: 'won' | 'lost';
}

interface StoredResponse {
  fingerprint: string;
  status: number;
  body: unknown;
}

type DeliveryStatus = 'pending' | 'delivered' | 'failed';

interface StoredEvent {
  id: string;
  type: string;
  created: string;
  object: Record<string, unknown>;
  delivery: { status: DeliveryStatus; attempts: number; nextAttemptAt: number | null; lastError: string | null; deliveredAt: string | null };
}

interface SandboxState {
  version: 1;
  charges: Record<string, StoredCharge>;
  refunds: Record<string, StoredRefund>;
  disputes: Record<string, StoredDispute>;
  /** Keyed by "<endpoint>:<Idempotency-Key>". */
  idempotency: Record<string, StoredResponse>;
  /** tok_soft_decline attempts per "<token>|<amount>|<currency>". */
  softDeclines: Record<string, number>;
  events: Record<string, StoredEvent>;
}

function emptyState(): SandboxState {
  return { version: 1, charges: {}, refunds: {}, disputes: {}, idempotency: {}, softDeclines: {}, events: {} };
}

function loadState(file: string | undefined): SandboxState {
  if (!file || !fs.existsSync(file)) return emptyState();
  let parsed: SandboxState;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as SandboxState;
  } catch (err) {
    // Starting empty would forget charges and idempotency keys: the double charge this file prevents.
    throw new Error(`${file} is not readable sandbox gateway state: ${(err as Error).message}`, { cause: err });
  }
  if (parsed.version !== 1) throw new Error(`${file}: unknown sandbox gateway state version ${String(parsed.version)}`);
  return { ...emptyState(), ...parsed };
}

/** Write-then-rename, so a crash leaves the old state or the new one, never half a file. */
function writeStateAtomically(file: string, state: SandboxState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(state));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export interface SandboxChargeView {
  id: string;
  status: 'succeeded' | 'declined';
  amount: number;
  currency: string;
  fee: number | null;
  amount_refunded: number;
  payment_method: string;
  description: string | null;
  metadata: Record<string, string>;
  idempotency_key: string;
  created: string;
  decline_code: DeclineCode | null;
  decline_message: string | null;
  disputed: boolean;
  dispute: string | null;
  refunds: string[];
}

export interface SandboxEventView {
  id: string;
  type: string;
  created: string;
  data: { object: Record<string, unknown> };
  delivery: StoredEvent['delivery'];
}

export interface SandboxGateway {
  url: string;
  port: number;
  /** Points webhooks somewhere else (or nowhere) and delivers any that were waiting. */
  setWebhookUrl(url: string | undefined): void;
  charges(): SandboxChargeView[];
  events(): SandboxEventView[];
  /** Disputes (chargebacks) as the API shows them, with any evidence submitted. */
  disputes(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

const ChargeBody = z
  .object({
    amount: z.number().int().positive().max(99_999_999),
    currency: z.string().regex(/^[A-Za-z]{3}$/, 'a three-letter ISO 4217 code'),
    payment_method: z.string().min(1).max(200),
    description: z.string().max(1000).nullish(),
    metadata: z.record(z.string().max(40), z.string().max(500)).nullish(),
  })
  .strict();

const EvidenceBody = z
  .object({
    evidence: z.record(z.string().max(40), z.string().max(20_000)),
  })
  .strict();

const RefundBody = z
  .object({
    payment: z.string().min(1).max(200),
    amount: z.number().int().positive().max(99_999_999).nullish(),
    reason: z.string().max(500).nullish(),
  })
  .strict();

class SandboxHttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

function invalidParams(error: z.ZodError): SandboxHttpError {
  const issue = error.issues[0];
  const param = issue ? issue.path.map(String).join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : '') : '';
  return new SandboxHttpError(400, 'invalid_request_error', 'parameter_invalid', `${param || 'body'}: ${issue?.message ?? 'invalid'}`, param || undefined);
}

function idempotencyKeyOf(req: Request): string {
  const key = req.get('Idempotency-Key');
  if (!key || key.length > 255) {
    throw new SandboxHttpError(400, 'invalid_request_error', 'idempotency_key_required', 'an Idempotency-Key header (1-255 characters) is required', 'Idempotency-Key');
  }
  return key;
}

/** The same parameters in any key order give the same fingerprint. */
function fingerprint(value: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    }
    return v ?? null;
  };
  return crypto.createHash('sha256').update(JSON.stringify(canonical(value))).digest('hex');
}

const newId = (prefix: string) => `${prefix}_${crypto.randomBytes(12).toString('hex')}`;

const DECLINES: Record<DeclineCode, string> = {
  hard_decline: 'The card was declined and will keep being declined: ask the customer for another payment method.',
  soft_decline: 'The card was declined; a later attempt may succeed.',
  insufficient_funds: 'The card has insufficient funds.',
};

export async function startSandboxGateway(opts: SandboxGatewayOptions): Promise<SandboxGateway> {
  const clock = opts.clock ?? (() => new Date());
  const log = opts.logger ?? createLogger('silent', 'sandbox-gateway');
  const timeoutDelayMs = opts.timeoutDelayMs ?? 35_000;
  const chargebackAfterMs = opts.chargebackAfterMs ?? 10_000;
  const softDeclineAttempts = opts.softDeclineAttempts ?? 2;
  const chargebackFeeMinor = opts.chargebackFeeMinor ?? 1500;
  const retry: WebhookRetryOptions = { baseDelayMs: 1000, maxDelayMs: 60_000, maxAttempts: 8, timeoutMs: 10_000, ...opts.webhookRetry };
  const state = loadState(opts.stateFile);
  let webhookUrl = opts.webhookUrl;
  let outageRequests = 0;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const webhookTimers = new Map<string, NodeJS.Timeout>();
  const deliveries = new Set<AbortController>();

  const save = () => {
    if (opts.stateFile && !stopped) writeStateAtomically(opts.stateFile, state);
  };
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  // ---- wire shapes ----

  const chargeView = (c: StoredCharge): SandboxChargeView => ({
    id: c.id,
    status: c.status,
    amount: c.amount,
    currency: c.currency,
    fee: c.fee,
    amount_refunded: c.amountRefunded,
    payment_method: c.paymentMethod,
    description: c.description,
    metadata: c.metadata,
    idempotency_key: c.idempotencyKey,
    created: c.created,
    decline_code: c.declineCode,
    decline_message: c.declineMessage,
    disputed: c.disputeId !== null,
    dispute: c.disputeId,
    refunds: [...c.refunds],
  });
  const chargeJson = (c: StoredCharge) => ({ object: 'charge', ...chargeView(c) });
  const refundJson = (r: StoredRefund) => ({
    id: r.id,
    object: 'refund',
    status: 'succeeded',
    payment: r.charge,
    amount: r.amount,
    currency: r.currency,
    reason: r.reason,
    created: r.created,
  });
  const disputeJson = (d: StoredDispute) => ({
    id: d.id,
    object: 'dispute',
    payment: d.charge,
    amount: d.amount,
    currency: d.currency,
    fee: d.fee,
    reason: d.reason,
    status: d.closedAs ?? (d.evidenceSubmittedAt ? 'under_review' : 'needs_response'),
    created: d.created,
    evidence: d.evidence ?? null,
    evidence_submitted_at: d.evidenceSubmittedAt ?? null,
    metadata: state.charges[d.charge]?.metadata ?? {},
  });
  const eventView = (e: StoredEvent): SandboxEventView => ({ id: e.id, type: e.type, created: e.created, data: { object: e.object }, delivery: { ...e.delivery } });

  // ---- webhooks ----

  function scheduleDelivery(id: string, delayMs: number): void {
    if (stopped || !webhookUrl) return;
    const existing = webhookTimers.get(id);
    if (existing) clearTimeout(existing);
    webhookTimers.set(
      id,
      setTimeout(() => {
        webhookTimers.delete(id);
        void deliver(id);
      }, Math.max(0, delayMs)),
    );
  }

  function emit(type: string, object: Record<string, unknown>): void {
    const event: StoredEvent = {
      id: newId('evt'),
      type,
      created: clock().toISOString(),
      object,
      delivery: { status: 'pending', attempts: 0, nextAttemptAt: null, lastError: null, deliveredAt: null },
    };
    state.events[event.id] = event;
    scheduleDelivery(event.id, 0);
  }

  async function deliver(id: string): Promise<void> {
    const event = state.events[id];
    const url = webhookUrl;
    if (!event || event.delivery.status !== 'pending' || !url || stopped) return;
    // The body is fixed per event; the signature is made fresh for each delivery, as its timestamp is "now".
    const body = JSON.stringify({ id: event.id, type: event.type, created: event.created, data: { object: event.object } });
    const abort = new AbortController();
    deliveries.add(abort);
    let failure: string | null = null;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'closeloop-sandbox-gateway',
          'sandbox-event-id': event.id,
          [SIGNATURE_HEADER.toLowerCase()]: signatureHeader(opts.webhookSecret, body, Math.floor(Date.now() / 1000)),
        },
        body,
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(retry.timeoutMs)]),
      });
      await res.arrayBuffer();
      if (!res.ok) failure = `HTTP ${res.status}`;
    } catch (err) {
      failure = (err as Error).message;
    } finally {
      deliveries.delete(abort);
    }
    if (stopped) return;
    const d = event.delivery;
    d.attempts += 1;
    d.lastError = failure;
    if (failure === null) {
      d.status = 'delivered';
      d.deliveredAt = new Date().toISOString();
      d.nextAttemptAt = null;
    } else if (d.attempts >= retry.maxAttempts) {
      d.status = 'failed';
      d.nextAttemptAt = null;
      log.error({ eventId: id, type: event.type, attempts: d.attempts, failure }, 'webhook delivery failed for good');
    } else {
      const delay = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (d.attempts - 1));
      d.nextAttemptAt = Date.now() + delay;
      log.warn({ eventId: id, type: event.type, attempts: d.attempts, failure, retryInMs: delay }, 'webhook delivery failed; will retry');
      scheduleDelivery(id, delay);
    }
    save();
  }

  function deliverPending(): void {
    for (const event of Object.values(state.events)) {
      if (event.delivery.status === 'pending' && !webhookTimers.has(event.id)) {
        scheduleDelivery(event.id, (event.delivery.nextAttemptAt ?? 0) - Date.now());
      }
    }
  }

  // ---- chargebacks ----

  function openDispute(chargeId: string): void {
    const charge = state.charges[chargeId];
    if (!charge || charge.chargebackDueAt === null || stopped) return;
    charge.chargebackDueAt = null;
    const amount = charge.amount - charge.amountRefunded;
    if (amount > 0 && charge.disputeId === null) {
      const dispute: StoredDispute = {
        id: newId('dp'),
        charge: charge.id,
        amount,
        currency: charge.currency,
        fee: chargebackFeeMinor,
        reason: 'fraudulent',
        created: clock().toISOString(),
      };
      state.disputes[dispute.id] = dispute;
      charge.disputeId = dispute.id;
      emit('charge.dispute.created', disputeJson(dispute));
    }
    save();
  }

  function scheduleChargeback(charge: StoredCharge): void {
    if (charge.chargebackDueAt === null) return;
    later(Math.max(0, charge.chargebackDueAt - Date.now()), () => openDispute(charge.id));
  }

  // ---- settlement ----

  function settlementLines(date: string): SettlementLine[] {
    const range = utcDayRange(date);
    if (!range) throw new SandboxHttpError(400, 'invalid_request_error', 'parameter_invalid', `date must be a real day as YYYY-MM-DD, got "${date}"`, 'date');
    const within = (iso: string) => {
      const t = new Date(iso).getTime();
      return t >= range.start.getTime() && t < range.end.getTime();
    };
    const lines: SettlementLine[] = [];
    for (const c of Object.values(state.charges)) {
      if (c.status === 'succeeded' && within(c.created)) {
        lines.push({ type: 'payment', id: c.id, paymentId: c.id, amountMinor: c.amount, feeMinor: c.fee ?? 0, currency: c.currency, occurredAt: c.created });
      }
    }
    for (const r of Object.values(state.refunds)) {
      if (within(r.created)) {
        lines.push({ type: 'refund', id: r.id, paymentId: r.charge, amountMinor: -r.amount, feeMinor: 0, currency: r.currency, occurredAt: r.created });
      }
    }
    for (const d of Object.values(state.disputes)) {
      if (!within(d.created)) continue;
      lines.push({ type: 'chargeback', id: d.id, paymentId: d.charge, amountMinor: -d.amount, feeMinor: 0, currency: d.currency, occurredAt: d.created });
      if (d.fee !== 0) {
        lines.push({ type: 'fee', id: `fee_${d.id}`, paymentId: d.charge, amountMinor: 0, feeMinor: d.fee, currency: d.currency, occurredAt: d.created });
      }
    }
    return lines.sort((a, b) => a.occurredAt.localeCompare(b.occurredAt) || a.id.localeCompare(b.id));
  }

  function settlementJson(date: string) {
    const lines = settlementLines(date);
    return {
      object: 'settlement_report',
      date,
      lines: lines.map((l) => ({ type: l.type, id: l.id, payment: l.paymentId ?? null, amount: l.amountMinor, fee: l.feeMinor, currency: l.currency, occurred_at: l.occurredAt })),
      totals: settlementTotals(lines),
    };
  }

  // ---- requests ----

  /** Answers from the idempotency store when the key was seen; true when it did. */
  function replayed(res: Response, scopedKey: string, print: string): boolean {
    const prior = state.idempotency[scopedKey];
    if (!prior) return false;
    if (prior.fingerprint !== print) {
      throw new SandboxHttpError(409, 'idempotency_error', 'idempotency_key_reused', 'this Idempotency-Key was already used with different parameters');
    }
    res.set('Idempotent-Replayed', 'true').status(prior.status).json(prior.body);
    return true;
  }

  function createCharge(req: Request, res: Response): void {
    const key = idempotencyKeyOf(req);
    const parsed = ChargeBody.safeParse(req.body ?? {});
    if (!parsed.success) throw invalidParams(parsed.error);
    const params = { ...parsed.data, currency: parsed.data.currency.toUpperCase(), description: parsed.data.description ?? null, metadata: parsed.data.metadata ?? {} };
    const scopedKey = `charges:${key}`;
    const print = fingerprint(params);
    if (replayed(res, scopedKey, print)) return;
    const behaviour = tokenBehaviour(params.payment_method);
    if (!behaviour) {
      throw new SandboxHttpError(400, 'invalid_request_error', 'invalid_payment_method', `no such payment method: "${params.payment_method}"`, 'payment_method');
    }

    let declineCode: DeclineCode | null = null;
    if (behaviour === 'hardDecline') declineCode = 'hard_decline';
    if (behaviour === 'insufficientFunds') declineCode = 'insufficient_funds';
    if (behaviour === 'softDecline') {
      const counter = `${params.payment_method}|${params.amount}|${params.currency}`;
      const attempt = (state.softDeclines[counter] ?? 0) + 1;
      state.softDeclines[counter] = attempt;
      if (attempt <= softDeclineAttempts) declineCode = 'soft_decline';
    }
    const charge: StoredCharge = {
      id: newId('ch'),
      status: declineCode ? 'declined' : 'succeeded',
      amount: params.amount,
      currency: params.currency,
      fee: declineCode ? null : sandboxFeeMinor(params.amount),
      amountRefunded: 0,
      paymentMethod: params.payment_method,
      description: params.description,
      metadata: params.metadata,
      idempotencyKey: key,
      created: clock().toISOString(),
      declineCode,
      declineMessage: declineCode ? DECLINES[declineCode] : null,
      refunds: [],
      disputeId: null,
      chargebackDueAt: behaviour === 'chargeback' ? Date.now() + chargebackAfterMs : null,
    };
    state.charges[charge.id] = charge;
    const response: StoredResponse = declineCode
      ? {
          fingerprint: print,
          status: 402,
          body: { error: { type: 'card_error', code: 'card_declined', decline_code: declineCode, message: charge.declineMessage, charge: charge.id } },
        }
      : { fingerprint: print, status: 200, body: chargeJson(charge) };
    state.idempotency[scopedKey] = response;
    emit(declineCode ? 'charge.failed' : 'charge.succeeded', chargeJson(charge));
    // The charge is durable before anyone hears about it: a retry after a lost answer finds it.
    save();
    scheduleChargeback(charge);

    if (behaviour === 'networkFailure') {
      req.socket.destroy();
      return;
    }
    if (behaviour === 'timeout') {
      later(timeoutDelayMs, () => {
        if (!res.headersSent && !res.destroyed) res.status(response.status).json(response.body);
      });
      return;
    }
    res.status(response.status).json(response.body);
  }

  function createRefund(req: Request, res: Response): void {
    const key = idempotencyKeyOf(req);
    const parsed = RefundBody.safeParse(req.body ?? {});
    if (!parsed.success) throw invalidParams(parsed.error);
    const params = { payment: parsed.data.payment, amount: parsed.data.amount ?? null, reason: parsed.data.reason ?? null };
    const scopedKey = `refunds:${key}`;
    const print = fingerprint(params);
    if (replayed(res, scopedKey, print)) return;
    const charge = state.charges[params.payment];
    if (!charge) throw new SandboxHttpError(404, 'invalid_request_error', 'resource_missing', `no such payment: "${params.payment}"`, 'payment');
    if (charge.status !== 'succeeded') throw new SandboxHttpError(400, 'invalid_request_error', 'charge_not_refundable', `payment ${charge.id} was declined: nothing to refund`, 'payment');
    if (charge.disputeId) throw new SandboxHttpError(400, 'invalid_request_error', 'charge_disputed', `payment ${charge.id} is disputed: the chargeback already returned the money`, 'payment');
    const refundable = charge.amount - charge.amountRefunded;
    const amount = params.amount ?? refundable;
    if (refundable === 0) throw new SandboxHttpError(400, 'invalid_request_error', 'charge_already_refunded', `payment ${charge.id} is already fully refunded`, 'payment');
    if (amount > refundable) {
      throw new SandboxHttpError(400, 'invalid_request_error', 'amount_too_large', `refund of ${amount} is more than the ${refundable} still refundable on payment ${charge.id}`, 'amount');
    }
    const refund: StoredRefund = { id: newId('re'), charge: charge.id, amount, currency: charge.currency, reason: params.reason, created: clock().toISOString(), idempotencyKey: key };
    state.refunds[refund.id] = refund;
    charge.amountRefunded += amount;
    charge.refunds.push(refund.id);
    state.idempotency[scopedKey] = { fingerprint: print, status: 200, body: refundJson(refund) };
    emit('refund.succeeded', refundJson(refund));
    save();
    res.json(refundJson(refund));
  }

  /** Evidence is accepted once per dispute; a repeat of the same key answers as the first did. */
  function submitEvidence(req: Request, res: Response): void {
    const key = idempotencyKeyOf(req);
    const parsed = EvidenceBody.safeParse(req.body ?? {});
    if (!parsed.success) throw invalidParams(parsed.error);
    const id = String(req.params.id);
    const scopedKey = `dispute_evidence:${key}`;
    const print = fingerprint({ id, evidence: parsed.data.evidence });
    if (replayed(res, scopedKey, print)) return;
    const dispute = state.disputes[id];
    if (!dispute) throw new SandboxHttpError(404, 'invalid_request_error', 'resource_missing', `no such dispute: "${id}"`, 'id');
    if (dispute.closedAs) throw new SandboxHttpError(400, 'invalid_request_error', 'dispute_closed', `dispute ${id} is already ${dispute.closedAs}`, 'id');
    if (dispute.evidenceSubmittedAt) {
      throw new SandboxHttpError(400, 'invalid_request_error', 'dispute_already_submitted', `dispute ${id} already has evidence under review`, 'evidence');
    }
    dispute.evidence = parsed.data.evidence;
    dispute.evidenceSubmittedAt = clock().toISOString();
    state.idempotency[scopedKey] = { fingerprint: print, status: 200, body: disputeJson(dispute) };
    save();
    res.json(disputeJson(dispute));
  }

  // ---- the app ----

  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '100kb' }));
  app.use((req, _res, next) => {
    if (opts.apiKey && req.get('Authorization') !== `Bearer ${opts.apiKey}`) {
      throw new SandboxHttpError(401, 'authentication_error', 'invalid_api_key', 'missing or wrong API key');
    }
    if (outageRequests > 0 && !req.path.startsWith('/v1/_sandbox/')) {
      outageRequests -= 1;
      throw new SandboxHttpError(503, 'api_error', 'service_unavailable', 'the sandbox gateway is having an outage (injected)');
    }
    next();
  });

  app.post('/v1/charges', createCharge);
  app.get('/v1/charges/:id', (req, res) => {
    const charge = state.charges[req.params.id];
    if (!charge) throw new SandboxHttpError(404, 'invalid_request_error', 'resource_missing', `no such payment: "${req.params.id}"`, 'id');
    res.json(chargeJson(charge));
  });
  app.post('/v1/refunds', createRefund);
  app.get('/v1/refunds/:id', (req, res) => {
    const refund = state.refunds[req.params.id];
    if (!refund) throw new SandboxHttpError(404, 'invalid_request_error', 'resource_missing', `no such refund: "${req.params.id}"`, 'id');
    res.json(refundJson(refund));
  });
  app.post('/v1/disputes/:id/evidence', submitEvidence);
  app.get('/v1/disputes/:id', (req, res) => {
    const dispute = state.disputes[req.params.id];
    if (!dispute) throw new SandboxHttpError(404, 'invalid_request_error', 'resource_missing', `no such dispute: "${req.params.id}"`, 'id');
    res.json(disputeJson(dispute));
  });
  app.get('/v1/settlements/:date', (req, res) => {
    res.json(settlementJson(req.params.date));
  });

  app.get('/v1/_sandbox/charges', (_req, res) => {
    res.json({ data: Object.values(state.charges).map(chargeView) });
  });
  app.get('/v1/_sandbox/events', (_req, res) => {
    res.json({ data: Object.values(state.events).map(eventView) });
  });
  app.put('/v1/_sandbox/webhook', (req, res) => {
    const url = (req.body as { url?: unknown } | undefined)?.url;
    if (url !== null && (typeof url !== 'string' || !/^https?:\/\//.test(url))) {
      throw new SandboxHttpError(400, 'invalid_request_error', 'parameter_invalid', 'url must be an http(s) URL or null', 'url');
    }
    handle.setWebhookUrl(url ?? undefined);
    res.json({ url: webhookUrl ?? null });
  });
  app.post('/v1/_sandbox/outage', (req, res) => {
    const requests = (req.body as { requests?: unknown } | undefined)?.requests;
    if (typeof requests !== 'number' || !Number.isInteger(requests) || requests < 0) {
      throw new SandboxHttpError(400, 'invalid_request_error', 'parameter_invalid', 'requests must be a non-negative integer', 'requests');
    }
    outageRequests = requests;
    res.json({ requests });
  });
  // Plays the card network: closes a dispute as won or lost and sends charge.dispute.closed.
  app.post('/v1/_sandbox/disputes/:id/close', (req, res) => {
    const dispute = state.disputes[req.params.id];
    if (!dispute) throw new SandboxHttpError(404, 'invalid_request_error', 'resource_missing', `no such dispute: "${req.params.id}"`, 'id');
    const status = (req.body as { status?: unknown } | undefined)?.status;
    if (status !== 'won' && status !== 'lost') throw new SandboxHttpError(400, 'invalid_request_error', 'parameter_invalid', 'status must be "won" or "lost"', 'status');
    if (dispute.closedAs) throw new SandboxHttpError(400, 'invalid_request_error', 'dispute_closed', `dispute ${dispute.id} is already ${dispute.closedAs}`, 'id');
    dispute.closedAs = status;
    emit('charge.dispute.closed', disputeJson(dispute));
    save();
    res.json(disputeJson(dispute));
  });
  app.post('/v1/_sandbox/settlements/:date/ready', (req, res) => {
    const report = settlementJson(req.params.date);
    emit('settlement.report_ready', { object: 'settlement_report', date: report.date, totals: report.totals });
    save();
    res.json(report);
  });

  app.use((req, _res, next) => next(new SandboxHttpError(404, 'invalid_request_error', 'not_found', `no route ${req.method} ${req.path}`)));
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    if (err instanceof SandboxHttpError) {
      res.status(err.status).json({ error: { type: err.type, code: err.code, message: err.message, ...(err.param ? { param: err.param } : {}) } });
      return;
    }
    const status = (err as { status?: number }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      res.status(status).json({ error: { type: 'invalid_request_error', code: 'invalid_body', message: (err as Error).message } });
      return;
    }
    log.error({ err }, 'sandbox gateway request failed');
    res.status(500).json({ error: { type: 'api_error', code: 'internal_error', message: 'the sandbox gateway failed' } });
  };
  app.use(onError);

  const server = http.createServer(app);
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  const handle: SandboxGateway = {
    url: `http://${host}:${port}`,
    port,
    setWebhookUrl(url) {
      webhookUrl = url;
      deliverPending();
    },
    charges: () => Object.values(state.charges).map(chargeView),
    events: () => Object.values(state.events).map(eventView),
    disputes: () => Object.values(state.disputes).map(disputeJson),
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const t of webhookTimers.values()) clearTimeout(t);
      for (const d of deliveries) d.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };

  for (const charge of Object.values(state.charges)) scheduleChargeback(charge);
  deliverPending();
  log.info({ url: handle.url, stateFile: opts.stateFile, webhookUrl }, 'sandbox gateway listening');
  return handle;
}
