/**
 * Gateway webhooks in, on the database side: every verified event is stored once per
 * (gateway, event id) before anything acts on it, and marked processed with its outcome in the
 * same transaction as what it changed, so a redelivery of a processed event changes nothing and
 * one whose processing failed is processed again. `settlement.ready` events are only stored: the
 * reconciliation run reads them (`settlementEvents`).
 */
import type { Knex } from 'knex';
import type { GatewayEvent } from '../gateway/adapter';
import type { Db } from '../infra/db';
import { recordCharge } from './payments';

export interface WebhookEventRow {
  id: string;
  brand_id: string | null;
  gateway: string;
  event_id: string;
  type: string;
  gateway_type: string;
  payload: GatewayEvent;
  received_at: Date;
  processed_at: Date | null;
  outcome: string | null;
}

/** Stores the event unless this gateway delivered it before; returns the stored row either way. */
export async function storeWebhookEvent(db: Db, gateway: string, event: GatewayEvent): Promise<WebhookEventRow> {
  await db('webhook_events')
    .insert({ gateway, event_id: event.id, type: event.type, gateway_type: event.gatewayType, payload: JSON.stringify(event) })
    .onConflict(['gateway', 'event_id'])
    .ignore();
  return db('webhook_events').where({ gateway, event_id: event.id }).first();
}

export type Processed = { outcome: string; brandId?: string | null };

/**
 * Runs `process` for an event not processed yet, holding the event's row lock so two concurrent
 * deliveries process it once, and records its outcome in the same transaction. Returns
 * `duplicate: true` (and the first outcome) when it was already processed.
 */
export async function processWebhookEventOnce(
  db: Db,
  row: Pick<WebhookEventRow, 'id'>,
  process: (trx: Knex.Transaction) => Promise<Processed>,
): Promise<{ duplicate: boolean; outcome: string }> {
  return db.transaction(async (trx) => {
    const locked: WebhookEventRow = await trx('webhook_events').where({ id: row.id }).forUpdate().first();
    if (locked.processed_at) return { duplicate: true, outcome: locked.outcome ?? '' };
    const result = await process(trx);
    await trx('webhook_events')
      .where({ id: row.id })
      .update({ processed_at: trx.fn.now(), outcome: result.outcome, ...(result.brandId ? { brand_id: result.brandId } : {}) });
    return { duplicate: false, outcome: result.outcome };
  });
}

export interface KnownPayment {
  id: string;
  brand_id: string;
  customer_id: string;
  invoice_id: string;
  gateway_payment_id: string;
  status: string;
}

/** Our succeeded payment behind a gateway payment id, if we have one. */
export async function paymentByGatewayId(trx: Knex.Transaction | Db, gateway: string, gatewayPaymentId: string): Promise<KnownPayment | undefined> {
  return trx('payments')
    .where({ gateway, gateway_payment_id: gatewayPaymentId, status: 'succeeded' })
    .orderBy('created_at')
    .first('id', 'brand_id', 'customer_id', 'invoice_id', 'gateway_payment_id', 'status');
}

export type IncomingPaymentOutcome =
  | 'payment_recorded'
  | 'payment_already_recorded'
  | 'payment_no_invoice_metadata'
  | 'payment_unknown_invoice'
  | 'payment_currency_mismatch';

/**
 * A succeeded gateway payment we have no record of, whose metadata names one of our invoices (a
 * late settlement, or a payment made outside our charge activity): recorded against that
 * invoice with the key `gateway:<gateway payment id>`. Less than the balance leaves the invoice
 * open with a smaller balance; more pays it and credits the rest to the customer (recordCharge).
 */
export async function recordIncomingPayment(
  trx: Knex.Transaction,
  gateway: string,
  event: Extract<GatewayEvent, { type: 'payment.succeeded' }>,
): Promise<{ outcome: IncomingPaymentOutcome; brandId?: string; paymentId?: string }> {
  const { brandId, customerId, invoiceId } = event.metadata;
  if (!brandId || !invoiceId) return { outcome: 'payment_no_invoice_metadata' };
  const invoice = await trx('invoices').where({ id: invoiceId, brand_id: brandId }).whereNot('kind', 'credit_note').first('id', 'customer_id', 'currency');
  if (!invoice || (customerId && customerId !== invoice.customer_id)) return { outcome: 'payment_unknown_invoice' };
  if (String(invoice.currency).trim() !== event.currency.toUpperCase()) return { outcome: 'payment_currency_mismatch', brandId };
  // A savepoint inside the event's transaction: the payment and the event's outcome commit together.
  const recorded = await recordCharge(trx as unknown as Db, {
    brandId,
    customerId: invoice.customer_id,
    invoiceId,
    idempotencyKey: `gateway:${event.paymentId}`,
    gateway,
    status: 'succeeded',
    gatewayPaymentId: event.paymentId,
    amountMinor: event.amountMinor,
    currency: event.currency.toUpperCase(),
  });
  return { outcome: recorded.recorded ? 'payment_recorded' : 'payment_already_recorded', brandId, paymentId: recorded.paymentId };
}

/** Settlement reports the gateway announced, oldest first, for the reconciliation run to pick up. */
export async function settlementEvents(db: Db, gateway: string, since?: Date): Promise<Array<{ eventId: string; date: string; receivedAt: Date }>> {
  const rows: WebhookEventRow[] = await db('webhook_events')
    .where({ gateway, type: 'settlement.ready' })
    .modify((q) => {
      if (since) q.where('received_at', '>=', since);
    })
    .orderBy('received_at');
  return rows.map((r) => ({ eventId: r.event_id, date: (r.payload as Extract<GatewayEvent, { type: 'settlement.ready' }>).date, receivedAt: r.received_at }));
}
