/**
 * Collections: charge what an invoice still owes with an idempotency key derived from the
 * invoice and the dunning attempt, and record the result once. A gateway that does not answer
 * is retried by Temporal with the same key (so a charge the gateway did make is returned, not
 * repeated); a decline is a business outcome handed back to the workflow's dunning.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { getPolicy } from '../data/policies';
import { invoiceBalanceMinor, recordCharge, writeOffInvoice } from '../data/payments';
import type { Policy } from '../domain/policies';
import type { Db } from '../infra/db';
import { faultPoint } from '../infra/fault-injection';
import { GatewayRequestError, type DeclineCode, type PaymentGateway } from '../gateway/adapter';

export interface ChargeInvoiceInput {
  brandId: string;
  customerId: string;
  invoiceId: string;
  /** 1 for the first charge, then one per dunning retry or new payment method. */
  attempt: number;
  paymentMethod: string;
}

export type ChargeOutcome =
  | { outcome: 'paid'; amountMinor: number; paymentId: string }
  | { outcome: 'nothing_due' }
  | { outcome: 'declined'; declineCode: DeclineCode | 'unknown'; message: string };

export function chargeIdempotencyKey(invoiceId: string, attempt: number): string {
  return `${invoiceId}:attempt-${attempt}`;
}

export function createCollectionsActivities({ db, gateway }: { db: Db; gateway: PaymentGateway }) {
  return {
    async chargeInvoice(input: ChargeInvoiceInput): Promise<ChargeOutcome> {
      const idempotencyKey = chargeIdempotencyKey(input.invoiceId, input.attempt);
      // A retry after the result was recorded returns that result, without asking the gateway again.
      const recorded = await db('payments').where({ brand_id: input.brandId, idempotency_key: idempotencyKey }).first();
      if (recorded) {
        return recorded.status === 'succeeded'
          ? { outcome: 'paid', amountMinor: Number(recorded.amount_minor), paymentId: recorded.id }
          : { outcome: 'declined', declineCode: recorded.decline_code ?? 'unknown', message: recorded.decline_message ?? '' };
      }
      const invoice = await db('invoices').where({ id: input.invoiceId, brand_id: input.brandId }).first('currency', 'status');
      if (!invoice) throw ApplicationFailure.nonRetryable(`invoice ${input.invoiceId} not found`, 'INVOICE_MISSING');
      const amountMinor = await invoiceBalanceMinor(db, input.brandId, input.invoiceId);
      if (amountMinor <= 0 || invoice.status !== 'finalized') return { outcome: 'nothing_due' };
      let result;
      try {
        result = await gateway.charge({
          amountMinor,
          currency: invoice.currency,
          paymentMethod: input.paymentMethod,
          idempotencyKey,
          description: `Invoice ${input.invoiceId}`,
          metadata: { brandId: input.brandId, customerId: input.customerId, invoiceId: input.invoiceId },
        });
        // Test-only crash point (CLOSELOOP_FAULT, never set in production): the gateway has the
        // charge, the payment is not recorded yet; the retry must get the same charge back.
        faultPoint('after-gateway-charge');
      } catch (err) {
        // A refused request (say, a payment method the gateway does not know) will not get better:
        // it is a decline that needs a new payment method. Timeouts and 5xx are retried by
        // Temporal with the same key.
        if (!(err instanceof GatewayRequestError)) throw err;
        result = { status: 'declined' as const, declineCode: 'hard_decline' as const, declineMessage: `${err.code}: ${err.message}` };
      }
      const { paymentId } = await recordCharge(db, {
        brandId: input.brandId,
        customerId: input.customerId,
        invoiceId: input.invoiceId,
        idempotencyKey,
        gateway: gateway.name,
        status: result.status,
        gatewayPaymentId: result.paymentId,
        declineCode: result.declineCode,
        declineMessage: result.declineMessage,
        amountMinor,
        feeMinor: result.feeMinor,
        currency: invoice.currency,
      });
      return result.status === 'succeeded'
        ? { outcome: 'paid', amountMinor, paymentId }
        : { outcome: 'declined', declineCode: result.declineCode ?? 'unknown', message: result.declineMessage ?? 'declined' };
    },

    /** What each invoice still owes (after payments, credit notes and write-offs). */
    async invoiceBalances({ brandId, invoiceIds }: { brandId: string; invoiceIds: string[] }): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      for (const id of invoiceIds) out[id] = await invoiceBalanceMinor(db, brandId, id);
      return out;
    },

    async writeOffInvoice(input: { brandId: string; customerId: string; invoiceId: string }): Promise<{ amountMinor: number }> {
      return writeOffInvoice(db, input.brandId, input.customerId, input.invoiceId);
    },

    async getDunningPolicy({ brandId }: { brandId: string }): Promise<Policy<'dunning'>> {
      return (await getPolicy(db, brandId, 'dunning')).document;
    },

    /** Suspension withdraws the customer's entitlements; paying restores them. */
    async setEntitlementsActive(input: { brandId: string; customerId: string; active: boolean }): Promise<void> {
      await db('entitlements').where({ brand_id: input.brandId, customer_id: input.customerId }).update({ active: input.active, updated_at: db.fn.now() });
    },
  };
}
