/**
 * /v1 payments and refunds: a customer's payments (what each collected, applied to its invoice
 * and credited to the customer, and refunded), and refunds through the gateway, idempotent by
 * the client's Idempotency-Key.
 */
import { CUSTOMER_ID } from '../domain/ids';
import { parseAmount, toMoneyJson } from '../domain/money';
import { GatewayRequestError, GatewayUnavailableError, type PaymentGateway } from '../gateway/adapter';
import { RefundError, RefundErrorTypes, refundPayment, type RefundRow } from '../data/refunds';
import type { Db } from '../infra/db';
import { ApiError, invalidFields, notFound } from './errors';
import { Api, ErrorSchema, z, MoneySchema as Money } from './route';

export interface PaymentRoutesDeps {
  db: Db;
  /** Absent when this API process has no gateway configured: refunds answer 503. */
  gateway?: PaymentGateway;
}

const money = (minor: number | string | bigint, currency: string) => toMoneyJson({ minor: BigInt(minor), currency: currency.trim() });

const CustomerParams = z.strictObject({
  id: z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit'),
});
const PaymentParams = z.strictObject({
  id: z.string().regex(/^pay_[0-9a-f]{32}$/, 'a payment id: "pay_" and 32 lowercase hex digits').openapi({ example: 'pay_0123456789abcdef0123456789abcdef' }),
});

const PaymentSchema = z
  .object({
    id: z.string(),
    invoiceId: z.string(),
    status: z.enum(['succeeded', 'declined']),
    amount: Money.openapi({ description: 'What the gateway collected (or tried to)' }),
    applied: Money.openapi({ description: 'The part that paid the invoice down' }),
    credited: Money.openapi({ description: "The part beyond the invoice's balance, added to the customer's credit for the next invoice" }),
    refunded: Money,
    declineCode: z.string().nullable(),
    declineMessage: z.string().nullable(),
    gateway: z.string(),
    gatewayPaymentId: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Payment');

const RefundSchema = z
  .object({
    id: z.string(),
    paymentId: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed']),
    amount: Money,
    fromCredit: Money.openapi({ description: "The part given back out of the customer's unused credit (an overpayment returned)" }),
    reason: z.string(),
    gatewayRefundId: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Refund');

const RefundHeaders = z.object({
  'idempotency-key': z
    .string({ error: 'required: a repeat with the same key returns the same refund' })
    .min(1, 'must not be empty')
    .max(200, 'at most 200 characters')
    .openapi({ description: 'Required; a repeat with the same key returns the refund it made, and refunds nothing more' }),
});

export const RefundBody = z
  .strictObject({
    amount: z
      .string()
      .regex(/^\d{1,13}(\.\d{1,4})?$/, "a positive decimal amount in the payment's currency, such as \"12.34\"")
      .refine((a) => /[1-9]/.test(a), 'must be greater than zero')
      .optional()
      .openapi({ description: 'Omit to refund everything still refundable', example: '12.34' }),
    reason: z.string().trim().min(1).max(500).openapi({ example: 'Customer cancelled within the trial' }),
  })
  .openapi('RefundRequest');

function refundView(r: RefundRow) {
  return {
    id: r.id,
    paymentId: r.payment_id,
    status: r.status,
    amount: money(r.amount_minor, r.currency),
    fromCredit: money(r.credit_minor, r.currency),
    reason: r.reason,
    gatewayRefundId: r.gateway_refund_id,
    createdAt: new Date(r.created_at).toISOString(),
  };
}

function refundProblem(err: RefundError): ApiError {
  switch (err.type) {
    case RefundErrorTypes.PAYMENT_NOT_FOUND:
      return notFound('payment');
    case RefundErrorTypes.IDEMPOTENCY_KEY_REUSED:
      return new ApiError(409, err.type, err.message, [{ field: 'header.idempotency-key', message: 'already used for a different refund' }]);
    case RefundErrorTypes.EXCEEDS_REFUNDABLE:
      return new ApiError(422, err.type, err.message, [
        {
          field: 'body.amount',
          message: err.message,
          ...(err.currency !== undefined && err.refundableMinor !== undefined ? { refundable: money(err.refundableMinor, err.currency) } : {}),
        },
      ]);
    case RefundErrorTypes.NOT_REFUNDABLE:
      return new ApiError(422, err.type, err.message, [{ field: 'params.id', message: err.message }]);
  }
}

export function registerPaymentRoutes(api: Api, deps: PaymentRoutesDeps): void {
  const { db, gateway } = deps;

  api.route({
    method: 'get',
    path: '/v1/customers/:id/payments',
    summary: "The customer's payments, newest first: declines, partial payments, overpayments credited to the customer, refunds",
    tag: 'payments',
    params: CustomerParams,
    responses: {
      200: { description: 'The payments', schema: z.object({ data: z.array(PaymentSchema) }) },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const customer = await db('customers').where({ brand_id: brand.id, id: params.id }).first('id');
      if (!customer) throw notFound(`customer "${params.id}"`);
      const rows = await db('payments as p')
        .where({ 'p.brand_id': brand.id, 'p.customer_id': params.id })
        .orderBy([{ column: 'p.created_at', order: 'desc' }, { column: 'p.id', order: 'desc' }])
        .select(
          'p.*',
          db.raw(`coalesce((select sum(r.amount_minor) from refunds r where r.payment_id = p.id and r.status = 'succeeded'), 0)::text as refunded_minor`),
        );
      return {
        status: 200,
        body: {
          data: rows.map((p: Record<string, any>) => ({
            id: p.id,
            invoiceId: p.invoice_id,
            status: p.status,
            amount: money(BigInt(p.amount_minor) + BigInt(p.credited_minor), p.currency),
            applied: money(p.amount_minor, p.currency),
            credited: money(p.credited_minor, p.currency),
            refunded: money(p.refunded_minor, p.currency),
            declineCode: p.decline_code,
            declineMessage: p.decline_message,
            gateway: p.gateway,
            gatewayPaymentId: p.gateway_payment_id,
            createdAt: new Date(p.created_at).toISOString(),
          })),
        },
      };
    },
  });

  api.route({
    method: 'post',
    path: '/v1/payments/:id/refunds',
    summary: 'Refund a payment through the gateway, in full or in part (never more than is still refundable). The invoice stays paid; the ledger books contra revenue. Idempotent by Idempotency-Key',
    tag: 'payments',
    params: PaymentParams,
    headers: RefundHeaders,
    body: RefundBody,
    responses: {
      201: { description: 'The refund was made', schema: RefundSchema },
      200: { description: 'This Idempotency-Key made it before: the same refund, nothing new', schema: RefundSchema },
      404: { description: 'No such payment for this brand', schema: ErrorSchema },
      409: { description: 'IDEMPOTENCY_KEY_REUSED: the key already made a different refund', schema: ErrorSchema },
      422: { description: 'EXCEEDS_REFUNDABLE (body.amount), NOT_REFUNDABLE or GATEWAY_REFUSED (e.g. a disputed payment)', schema: ErrorSchema },
      503: { description: 'No gateway configured, or the gateway did not answer: retry with the same Idempotency-Key', schema: ErrorSchema },
    },
    handler: async ({ params, body, headers, brand }) => {
      const payment = await db('payments').where({ id: params.id, brand_id: brand.id }).first('currency');
      if (!payment) throw notFound('payment');
      if (!gateway) throw new ApiError(503, 'GATEWAY_NOT_CONFIGURED', 'this API has no payment gateway configured');
      let amountMinor: number | 'full' = 'full';
      if (body.amount !== undefined) {
        try {
          amountMinor = Number(parseAmount(body.amount, String(payment.currency).trim()).minor);
        } catch (err) {
          throw invalidFields([{ field: 'body.amount', message: (err as Error).message }]);
        }
      }
      let result;
      try {
        result = await refundPayment(db, gateway, { brandId: brand.id, paymentId: params.id, amountMinor, reason: body.reason, idempotencyKey: headers['idempotency-key'] });
      } catch (err) {
        if (err instanceof RefundError) throw refundProblem(err);
        if (err instanceof GatewayUnavailableError) {
          throw new ApiError(503, 'GATEWAY_UNAVAILABLE', `the gateway did not answer (${err.code}); nothing was recorded — retry with the same Idempotency-Key`);
        }
        if (err instanceof GatewayRequestError) {
          throw new ApiError(422, 'GATEWAY_REFUSED', `the gateway refused the refund (${err.code})`, [{ field: 'params.id', message: err.message }]);
        }
        throw err;
      }
      return { status: result.created ? 201 : 200, body: refundView(result.refund) };
    },
  });
}
