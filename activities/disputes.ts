/**
 * The dispute workflow's side effects: read the dispute and the brand's policy, make the policy's
 * automatic decision under the abuse cap, gather evidence, credit through the credit-note path,
 * answer chargebacks at the gateway, and record the outcome. Each is idempotent by dispute id.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CreditNoteError, CreditNoteErrorTypes } from '../data/credit-notes';
import {
  ChargebackInput,
  creditDispute,
  decideDisputeAutomatically,
  DisputeDataError,
  DisputeDataErrorTypes,
  gatherDisputeEvidence,
  getDispute,
  markDisputeEscalated,
  markDisputeStatus,
  markEvidenceSubmitted,
  openChargebackDispute,
  recordDisputeOutcome,
} from '../data/disputes';
import { getPolicy } from '../data/policies';
import { AutomaticDecision, Dispute, DisputeDecision, DisputeEvidence, DisputeFigures, disputeFigures, DisputeResolution } from '../domain/disputes';
import { formatMinor } from '../domain/money';
import type { Policy } from '../domain/policies';
import { GatewayError, type PaymentGateway } from '../gateway/adapter';
import type { Db } from '../infra/db';

export interface DisputeDeps {
  db: Db;
  gateway: PaymentGateway;
}

export interface DisputeContext {
  dispute: Dispute;
  policy: Policy<'disputes'>;
  /** The policy's figures in the dispute's currency. */
  figures: DisputeFigures;
}

/** Errors a retry cannot fix become non-retryable failures with their stable type. */
async function failFast<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DisputeDataError) throw ApplicationFailure.nonRetryable(err.message, err.type);
    if (err instanceof CreditNoteError && err.type !== CreditNoteErrorTypes.EXCEEDS_CREDITABLE) throw ApplicationFailure.nonRetryable(err.message, err.type);
    if (err instanceof GatewayError && !err.retryable) throw ApplicationFailure.nonRetryable(err.message, err.type);
    throw err;
  }
}

async function requireDispute(db: Db, brandId: string, disputeId: string): Promise<Dispute> {
  const dispute = await getDispute(db, brandId, disputeId);
  if (!dispute) throw new DisputeDataError(DisputeDataErrorTypes.DISPUTE_NOT_FOUND, `dispute "${disputeId}" not found`);
  return dispute;
}

/** The evidence as the text a card network's reviewer reads. */
function evidenceText(dispute: Dispute, evidence: DisputeEvidence): string {
  const money = (minor: number) => `${dispute.currency} ${formatMinor(BigInt(minor), dispute.currency)}`;
  const lines = [
    `Invoice ${dispute.invoiceId}; disputed ${money(dispute.amountMinor)} (gateway reason: ${dispute.reason}).`,
    `Payments on the invoice: ${evidence.payments.succeeded} succeeded (${money(evidence.payments.paidMinor)}), ${evidence.payments.declined} declined.`,
    `Messages about the invoice: ${evidence.deliveries.sent} delivered, ${evidence.deliveries.failed} failed (${evidence.deliveries.templates.join(', ') || 'none'}).`,
  ];
  if (evidence.usage) {
    lines.push(`Metered usage behind the line: ${evidence.usage.events} events, quantity ${evidence.usage.quantity}, from ${evidence.usage.firstAt ?? '-'} to ${evidence.usage.lastAt ?? '-'}.`);
  }
  return lines.join('\n');
}

export function createDisputeActivities({ db, gateway }: DisputeDeps) {
  return {
    /** Opens the dispute of a gateway chargeback, once per chargeback id. */
    async openChargebackDispute(input: ChargebackInput): Promise<{ disputeId: string }> {
      const { disputeId } = await failFast(() => openChargebackDispute(db, input));
      return { disputeId };
    },

    async loadDisputeContext({ brandId, disputeId }: { brandId: string; disputeId: string }): Promise<DisputeContext> {
      return failFast(async () => {
        const dispute = await requireDispute(db, brandId, disputeId);
        const { document: policy } = await getPolicy(db, brandId, 'disputes');
        return { dispute, policy, figures: disputeFigures(policy, dispute.currency) };
      });
    },

    async decideDisputeAutomatically(input: { brandId: string; disputeId: string; periodKey: string; figures: DisputeFigures }): Promise<AutomaticDecision> {
      return failFast(() => decideDisputeAutomatically(db, input));
    },

    async gatherDisputeEvidence({ brandId, disputeId, at }: { brandId: string; disputeId: string; at: string }): Promise<DisputeEvidence> {
      return failFast(() => gatherDisputeEvidence(db, brandId, disputeId, at));
    },

    async creditDispute(input: { brandId: string; disputeId: string; amountMinor: number; at: string }): Promise<{ creditNoteId: string | null; creditedMinor: number }> {
      return failFast(() => creditDispute(db, { brandId: input.brandId, disputeId: input.disputeId, amountMinor: input.amountMinor, issuedAt: input.at }));
    },

    async markDisputeEscalated(input: { brandId: string; disputeId: string; decisionDeadline: string }): Promise<void> {
      await markDisputeEscalated(db, input);
    },

    async markDisputeGatheringEvidence(input: { brandId: string; disputeId: string }): Promise<void> {
      await markDisputeStatus(db, { ...input, status: 'evidence_gathering' });
    },

    /**
     * Answers a chargeback at the gateway with the gathered evidence, once (the gateway's
     * idempotency key is the dispute id), and marks the dispute as awaiting the gateway's verdict.
     */
    async submitChargebackEvidence({ brandId, disputeId, at }: { brandId: string; disputeId: string; at: string }): Promise<{ status: string }> {
      return failFast(async () => {
        const dispute = await requireDispute(db, brandId, disputeId);
        if (!dispute.chargebackId) throw ApplicationFailure.nonRetryable(`dispute ${disputeId} is not a chargeback`, 'NOT_A_CHARGEBACK');
        const evidence = dispute.evidence ?? (await gatherDisputeEvidence(db, brandId, disputeId, at));
        const customer = await db('customers').where({ brand_id: brandId, id: dispute.customerId }).first('email');
        const invoice = await db('invoices').where({ brand_id: brandId, id: dispute.invoiceId }).first('issued_at', 'period_start');
        const result = await gateway.submitDisputeEvidence({
          chargebackId: dispute.chargebackId,
          idempotencyKey: `dispute-evidence:${dispute.id}`,
          evidence: {
            ...(customer?.email ? { customerEmail: String(customer.email) } : {}),
            productDescription: `Subscription and metered service billed on invoice ${dispute.invoiceId}`,
            ...(invoice ? { serviceDate: new Date(invoice.period_start ?? invoice.issued_at).toISOString().slice(0, 10) } : {}),
            uncategorizedText: evidenceText(dispute, evidence),
          },
        });
        await markEvidenceSubmitted(db, { brandId, disputeId, submittedAt: at });
        return { status: result.status };
      });
    },

    async recordDisputeOutcome(input: {
      brandId: string;
      disputeId: string;
      outcome: NonNullable<Dispute['outcome']>;
      resolution: DisputeResolution;
      decision?: DisputeDecision;
      at: string;
    }): Promise<Dispute> {
      return recordDisputeOutcome(db, { ...input, resolvedAt: input.at });
    },
  };
}
