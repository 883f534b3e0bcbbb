/**
 * POST /v1/webhooks/gateway: the payment gateway's signed events. Authenticated by the
 * gateway's signature over the raw body (not by an API key), so it is mounted ahead of the JSON
 * parser and the key check. A verified event is stored once per event id before anything acts
 * on it; a redelivery of an event already processed answers 200 `{ duplicate: true }` and
 * changes nothing.
 *
 * Routing: `chargeback.created` signals the customer's workflow (which opens a dispute);
 * `chargeback.closed` (the gateway's verdict) signals that dispute's workflow;
 * `payment.succeeded` for a payment we have no record of, whose metadata names one of our
 * invoices, is recorded against it (a late settlement: partial, full or overpayment);
 * `refund.succeeded` completes a pending refund; `settlement.ready` is stored for the
 * reconciliation run; anything else is stored and ignored. A bad signature, an old timestamp or
 * a malformed body is a 400 that writes nothing; a Temporal outage is a 503, so the gateway
 * delivers again and the event is processed then.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import express, { type Router } from 'express';
import type { Knex } from 'knex';
import { disputeByChargeback } from '../data/disputes';
import { markRefundSucceeded } from '../data/refunds';
import { paymentByGatewayId, processWebhookEventOnce, recordIncomingPayment, storeWebhookEvent, type Processed } from '../data/webhooks';
import { customerWorkflowId } from '../domain/ids';
import { type GatewayEvent, type PaymentGateway, WebhookVerificationError } from '../gateway/adapter';
import type { Db } from '../infra/db';
import type { Logger } from '../infra/logger';
import { chargebackClosedSignal } from '../workflows/dispute-shared';
import { chargebackSignal, disputeWorkflowId, type ChargebackNotice } from '../workflows/shared';
import { ApiError } from './errors';
import { Api, ErrorSchema, z } from './route';

export const WEBHOOK_PATH = '/v1/webhooks/gateway';

export interface WebhookRoutesDeps {
  db: Db;
  temporal: Client;
  /** Absent when this API process has no gateway configured: webhooks answer 503. */
  gateway?: PaymentGateway;
  logger: Logger;
  /** How long signalling a customer's workflow may take before the delivery answers 503. */
  signalTimeoutMs?: number;
}

/** How long a merchant has to answer a chargeback when the gateway does not say. */
export const DEFAULT_EVIDENCE_WINDOW_MS = 7 * 86_400_000;

/** The header the gateway signs with, for error details (`header.<name>`). */
function signatureField(gateway: PaymentGateway): string {
  return gateway.name === 'stripe' ? 'header.stripe-signature' : 'header.sandbox-signature';
}

function rejected(err: WebhookVerificationError, gateway: PaymentGateway): ApiError {
  switch (err.reason) {
    case 'timestamp_outside_tolerance':
      return new ApiError(400, 'WEBHOOK_TIMESTAMP_OUTSIDE_WINDOW', err.message, [{ field: signatureField(gateway), message: err.message }]);
    case 'malformed_payload':
      return new ApiError(400, 'WEBHOOK_PAYLOAD_INVALID', err.message, [{ field: 'body', message: err.message }]);
    default:
      return new ApiError(400, 'WEBHOOK_SIGNATURE_INVALID', err.message, [{ field: signatureField(gateway), message: err.message }]);
  }
}

const WebhookAck = z
  .object({ received: z.literal(true), duplicate: z.boolean(), outcome: z.string() })
  .openapi('WebhookAck');

/** Puts the route in /v1/openapi.json; the handler itself is the router below. */
export function documentWebhookRoute(api: Api): void {
  api.registry.registerPath({
    method: 'post',
    path: WEBHOOK_PATH,
    summary: "The payment gateway's signed events (chargebacks, late payments, refunds, settlement reports). Authenticated by the gateway's signature, idempotent by event id",
    tags: ['webhooks'],
    security: [],
    request: { body: { content: { 'application/json': { schema: z.object({}).passthrough() } }, required: true } },
    responses: {
      200: { description: 'Stored (and processed, unless it was a duplicate)', content: { 'application/json': { schema: WebhookAck } } },
      400: { description: 'WEBHOOK_SIGNATURE_INVALID, WEBHOOK_TIMESTAMP_OUTSIDE_WINDOW or WEBHOOK_PAYLOAD_INVALID; nothing written', content: { 'application/json': { schema: ErrorSchema } } },
      503: { description: 'No gateway configured, or a dependency is down: deliver again later', content: { 'application/json': { schema: ErrorSchema } } },
    },
  });
}

export function createWebhookRouter(deps: WebhookRoutesDeps): Router {
  const { db, temporal, gateway, logger } = deps;
  const signalTimeoutMs = deps.signalTimeoutMs ?? 10_000;
  const router = express.Router();

  async function chargeback(trx: Knex.Transaction, gw: PaymentGateway, event: Extract<GatewayEvent, { type: 'chargeback.created' }>): Promise<Processed> {
    const payment = await paymentByGatewayId(trx, gw.name, event.paymentId);
    if (!payment) return { outcome: 'chargeback_unknown_payment' };
    const notice: ChargebackNotice = {
      paymentId: payment.id,
      gatewayPaymentId: event.paymentId,
      chargebackId: event.chargebackId,
      invoiceId: payment.invoice_id,
      amountMinor: event.amountMinor,
      currency: event.currency.toUpperCase(),
      reason: event.reason,
      evidenceDueBy: new Date(Date.parse(event.occurredAt) + DEFAULT_EVIDENCE_WINDOW_MS).toISOString(),
      eventId: event.id,
    };
    const handle = temporal.workflow.getHandle(customerWorkflowId(payment.brand_id, payment.customer_id));
    try {
      await temporal.withDeadline(Date.now() + signalTimeoutMs, () => handle.signal(chargebackSignal, notice));
    } catch (err) {
      // A customer whose workflow is gone (closed long ago) cannot act on it: record it for operators.
      if (err instanceof WorkflowNotFoundError) return { outcome: 'chargeback_workflow_not_found', brandId: payment.brand_id };
      logger.warn({ err, eventId: event.id }, 'could not signal the customer workflow about a chargeback');
      throw new ApiError(503, 'UNAVAILABLE', 'the customer workflow could not be signalled; deliver again later');
    }
    return { outcome: 'chargeback_signalled', brandId: payment.brand_id };
  }

  /** The gateway's verdict on a chargeback ends its dispute (won: the money comes back). */
  async function chargebackClosed(trx: Knex.Transaction, gw: PaymentGateway, event: Extract<GatewayEvent, { type: 'chargeback.closed' }>): Promise<Processed> {
    const payment = await paymentByGatewayId(trx, gw.name, event.paymentId);
    if (!payment) return { outcome: 'chargeback_unknown_payment' };
    const dispute = await disputeByChargeback(trx, payment.brand_id, event.chargebackId);
    if (!dispute) return { outcome: 'chargeback_dispute_unknown', brandId: payment.brand_id };
    const handle = temporal.workflow.getHandle(disputeWorkflowId(payment.brand_id, dispute.id));
    try {
      await temporal.withDeadline(Date.now() + signalTimeoutMs, () => handle.signal(chargebackClosedSignal, { outcome: event.outcome }));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { outcome: 'chargeback_dispute_workflow_not_found', brandId: payment.brand_id };
      logger.warn({ err, eventId: event.id }, 'could not signal the dispute workflow about a chargeback verdict');
      throw new ApiError(503, 'UNAVAILABLE', 'the dispute workflow could not be signalled; deliver again later');
    }
    return { outcome: 'chargeback_closed_signalled', brandId: payment.brand_id };
  }

  async function route(trx: Knex.Transaction, gw: PaymentGateway, event: GatewayEvent): Promise<Processed> {
    switch (event.type) {
      case 'chargeback.closed':
        return chargebackClosed(trx, gw, event);
      case 'chargeback.created':
        return chargeback(trx, gw, event);
      case 'payment.succeeded': {
        const known = await paymentByGatewayId(trx, gw.name, event.paymentId);
        if (known) return { outcome: 'payment_known', brandId: known.brand_id };
        return recordIncomingPayment(trx, gw.name, event);
      }
      case 'refund.succeeded':
        return { outcome: `refund_${await markRefundSucceeded(trx as unknown as Db, gw.name, event)}` };
      case 'settlement.ready':
        // Reconciliation reads these (data/webhooks.ts settlementEvents); storing is the whole job here.
        return { outcome: 'settlement_stored' };
      case 'payment.declined':
        // Collections records its own declines from the charge's answer.
        return { outcome: 'ignored' };
      default:
        return { outcome: 'ignored' };
    }
  }

  router.post('/', express.raw({ type: '*/*', limit: '1mb' }), async (req, res, next) => {
    res.locals.route = WEBHOOK_PATH;
    try {
      if (!gateway) throw new ApiError(503, 'GATEWAY_NOT_CONFIGURED', 'this API has no payment gateway configured');
      const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      let event: GatewayEvent;
      try {
        event = gateway.verifyWebhook(rawBody, req.headers);
      } catch (err) {
        if (err instanceof WebhookVerificationError) throw rejected(err, gateway);
        throw err;
      }
      const stored = await storeWebhookEvent(db, gateway.name, event);
      if (stored.processed_at) {
        res.status(200).json({ received: true, duplicate: true, outcome: stored.outcome ?? '' });
        return;
      }
      const result = await processWebhookEventOnce(db, stored, (trx) => route(trx, gateway, event));
      logger.info({ eventId: event.id, type: event.type, ...result }, 'gateway webhook');
      res.status(200).json({ received: true, ...result });
    } catch (err) {
      next(err);
    }
  });
  return router;
}
