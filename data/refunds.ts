/**
 * Refunds: money a succeeded payment gives back through the gateway, in full or in part.
 *
 * Double entry: a refund returns cash the gateway collected (CR gateway_clearing). What the
 * payment paid of its invoice is given back as contra revenue (DR revenue_refunds); what it
 * brought beyond the invoice (an overpayment, credited to the customer) is given back out of
 * that credit first (DR customer_credit, at most what is still unused), so the customer never
 * keeps both the cash and the credit. Receivables are untouched: the invoice was paid and stays
 * paid, and `checkLedger` (receivables = invoices − payments − write-offs) holds.
 *
 * The payment row is locked from the refundable check until the refund is recorded, with the
 * gateway call in between: two refunds of one payment can never together exceed it. The
 * gateway gets an idempotency key derived from the client's, so a request retried after a lost
 * answer or a crash gets the gateway's original refund, never a second one; a repeat of a key
 * already recorded returns the recorded refund without asking the gateway again.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../infra/db';
import type { PaymentGateway, RefundResult } from '../gateway/adapter';
import { customerCreditMinor, postTransaction } from './ledger';

export const RefundErrorTypes = {
  PAYMENT_NOT_FOUND: 'PAYMENT_NOT_FOUND',
  NOT_REFUNDABLE: 'NOT_REFUNDABLE',
  EXCEEDS_REFUNDABLE: 'EXCEEDS_REFUNDABLE',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
} as const;
export type RefundErrorType = (typeof RefundErrorTypes)[keyof typeof RefundErrorTypes];

export class RefundError extends Error {
  override name = 'RefundError';
  constructor(
    readonly type: RefundErrorType,
    message: string,
    /** What may still be refunded on the payment, when that is the problem. */
    readonly refundableMinor?: number,
    readonly currency?: string,
  ) {
    super(message);
  }
}

export interface RefundPaymentInput {
  brandId: string;
  /** Our payment id (`pay_…`). */
  paymentId: string;
  /** 'full' refunds everything still refundable. */
  amountMinor: number | 'full';
  reason: string;
  idempotencyKey: string;
}

export interface RefundRow {
  id: string;
  brand_id: string;
  customer_id: string;
  payment_id: string;
  idempotency_key: string;
  gateway: string;
  gateway_refund_id: string | null;
  gateway_payment_id: string;
  amount_minor: string;
  credit_minor: string;
  currency: string;
  reason: string;
  status: 'pending' | 'succeeded' | 'failed';
  created_at: Date;
  succeeded_at: Date | null;
}

type Trx = Knex.Transaction | Db;

/** What the gateway collected on a payment, less refunds that went through or may still. */
export async function refundableMinor(trx: Trx, brandId: string, payment: { id: string; amount_minor: string | number; credited_minor: string | number }): Promise<number> {
  const row = await trx('refunds')
    .where({ brand_id: brandId, payment_id: payment.id })
    .whereIn('status', ['pending', 'succeeded'])
    .sum<{ sum: string | null }>({ sum: 'amount_minor' })
    .first();
  return Number(payment.amount_minor) + Number(payment.credited_minor) - Number(row?.sum ?? 0);
}

/** The key the gateway sees: scoped by brand, so two brands' clients can never collide. */
export const gatewayRefundKey = (brandId: string, idempotencyKey: string) => `refund:${brandId}:${idempotencyKey}`;

/** Books a succeeded refund once (idempotent by the refund's id), the payment's row locked. */
async function postRefund(
  trx: Knex.Transaction,
  r: { id: string; paymentId: string; brandId: string; customerId: string; amountMinor: number; currency: string },
): Promise<void> {
  const payment = await trx('payments').where({ id: r.paymentId }).first('credited_minor');
  const creditedBack = await trx('refunds')
    .where({ payment_id: r.paymentId, status: 'succeeded' })
    .whereNot('id', r.id)
    .sum<{ sum: string | null }>({ sum: 'credit_minor' })
    .first();
  const unusedCredit = await customerCreditMinor(trx, r.brandId, r.customerId, r.currency);
  const creditMinor = Math.max(0, Math.min(r.amountMinor, Number(payment?.credited_minor ?? 0) - Number(creditedBack?.sum ?? 0), unusedCredit));
  await trx('refunds').where({ id: r.id }).update({ credit_minor: creditMinor });
  await postTransaction(trx, {
    brandId: r.brandId,
    customerId: r.customerId,
    kind: 'refund',
    documentId: r.id,
    currency: r.currency,
    entries: [
      { account: 'customer_credit', amountMinor: creditMinor },
      { account: 'revenue_refunds', amountMinor: r.amountMinor - creditMinor },
      { account: 'gateway_clearing', amountMinor: -r.amountMinor },
    ].filter((e) => e.amountMinor !== 0),
  });
}

function sameRequest(existing: RefundRow, input: RefundPaymentInput): boolean {
  return existing.payment_id === input.paymentId && existing.reason === input.reason && (input.amountMinor === 'full' || Number(existing.amount_minor) === input.amountMinor);
}

/**
 * Refunds a payment through the gateway and records it with its ledger transaction, or returns
 * the refund this idempotency key already made (`created: false`). Throws RefundError for an
 * unknown payment, one that cannot be refunded, an amount above what is still refundable, or a
 * key reused for another refund; gateway errors (GatewayUnavailableError: retry with the same
 * key; GatewayRequestError: the gateway refused) pass through and record nothing.
 */
export async function refundPayment(db: Db, gateway: PaymentGateway, input: RefundPaymentInput): Promise<{ refund: RefundRow; created: boolean }> {
  return db.transaction(async (trx) => {
    const payment = await trx('payments').where({ id: input.paymentId, brand_id: input.brandId }).forUpdate().first();
    if (!payment) throw new RefundError(RefundErrorTypes.PAYMENT_NOT_FOUND, `payment "${input.paymentId}" not found`);

    // Checked under the payment's lock: a concurrent repeat of the key waits here and then finds it.
    const existing: RefundRow | undefined = await trx('refunds').where({ brand_id: input.brandId, idempotency_key: input.idempotencyKey }).first();
    if (existing) {
      if (!sameRequest(existing, input)) {
        throw new RefundError(RefundErrorTypes.IDEMPOTENCY_KEY_REUSED, 'this idempotency key already made a different refund');
      }
      return { refund: existing, created: false };
    }

    const currency = String(payment.currency).trim();
    if (payment.status !== 'succeeded' || !payment.gateway_payment_id) {
      throw new RefundError(RefundErrorTypes.NOT_REFUNDABLE, `payment "${input.paymentId}" did not succeed: nothing to refund`, 0, currency);
    }
    if (payment.gateway !== gateway.name) {
      throw new RefundError(RefundErrorTypes.NOT_REFUNDABLE, `payment "${input.paymentId}" was made through ${payment.gateway}, not ${gateway.name}`);
    }
    const refundable = await refundableMinor(trx, input.brandId, payment);
    const amountMinor = input.amountMinor === 'full' ? refundable : input.amountMinor;
    if (refundable <= 0) throw new RefundError(RefundErrorTypes.EXCEEDS_REFUNDABLE, 'nothing is left to refund on this payment', 0, currency);
    if (amountMinor > refundable) {
      throw new RefundError(RefundErrorTypes.EXCEEDS_REFUNDABLE, `a refund of ${amountMinor} is more than the ${refundable} still refundable`, refundable, currency);
    }

    const result: RefundResult = await gateway.refund({
      paymentId: payment.gateway_payment_id,
      amountMinor,
      idempotencyKey: gatewayRefundKey(input.brandId, input.idempotencyKey),
      reason: input.reason,
    });

    const id = `re_${crypto.randomUUID().replace(/-/g, '')}`;
    const [refund] = (await trx('refunds')
      .insert({
        id,
        brand_id: input.brandId,
        customer_id: payment.customer_id,
        payment_id: payment.id,
        idempotency_key: input.idempotencyKey,
        gateway: gateway.name,
        gateway_refund_id: result.refundId,
        gateway_payment_id: payment.gateway_payment_id,
        amount_minor: result.amountMinor,
        currency,
        reason: input.reason,
        status: result.status,
        succeeded_at: result.status === 'succeeded' ? trx.fn.now() : null,
      })
      .returning('*')) as RefundRow[];
    if (result.status === 'succeeded') {
      await postRefund(trx, { id, paymentId: payment.id, brandId: input.brandId, customerId: payment.customer_id, amountMinor: result.amountMinor, currency });
    }
    return { refund: result.status === 'succeeded' ? await trx('refunds').where({ id }).first() : refund!, created: true };
  });
}

/**
 * The gateway says a refund went through (its webhook): a pending refund of ours becomes
 * succeeded and is booked now. Returns what happened, for the webhook's record. The payment's
 * lock is taken first, so a webhook that overtakes the refund request it reports waits for
 * that request to record the refund rather than calling it unknown.
 */
export async function markRefundSucceeded(
  db: Db,
  gatewayName: string,
  event: { refundId: string; paymentId: string },
): Promise<'succeeded' | 'already_succeeded' | 'was_failed' | 'unknown_refund'> {
  const gatewayRefundId = event.refundId;
  return db.transaction(async (trx) => {
    await trx('payments').where({ gateway: gatewayName, gateway_payment_id: event.paymentId }).forUpdate().select('id');
    const refund: RefundRow | undefined = await trx('refunds').where({ gateway: gatewayName, gateway_refund_id: gatewayRefundId }).forUpdate().first();
    if (!refund) return 'unknown_refund';
    if (refund.status === 'succeeded') return 'already_succeeded';
    if (refund.status === 'failed') return 'was_failed';
    await trx('refunds').where({ id: refund.id }).update({ status: 'succeeded', succeeded_at: trx.fn.now() });
    await postRefund(trx, {
      id: refund.id,
      paymentId: refund.payment_id,
      brandId: refund.brand_id,
      customerId: refund.customer_id,
      amountMinor: Number(refund.amount_minor),
      currency: refund.currency.trim(),
    });
    return 'succeeded';
  });
}
