/**
 * Disputes in PostgreSQL. Opening one takes the disputed invoice's row lock (the lock credit
 * notes take), so concurrent disputes and credits never together dispute more than the invoice
 * or line still carries. The automatic decision takes the customer's row lock, so concurrent
 * micro-disputes of one customer are counted against the abuse cap one after the other. A
 * chargeback books the money the gateway took back (and, if won, returned) with its row.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import {
  AutoCreditUsage,
  AutomaticDecision,
  chargebackLedgerEntries,
  decideAutomatically,
  Dispute,
  DisputeDecision,
  DisputeEvidence,
  DisputeFigures,
  DisputeResolution,
  DisputeStatus,
  lineDisputableMinor,
} from '../domain/disputes';
import type { Db } from '../infra/db';
import { invoiceCredits, issueCreditNote } from './credit-notes';
import { postTransaction } from './ledger';

type Trx = Knex.Transaction | Db;

export const DisputeDataErrorTypes = {
  CUSTOMER_NOT_FOUND: 'CUSTOMER_NOT_FOUND',
  INVOICE_NOT_FOUND: 'INVOICE_NOT_FOUND',
  NOT_DISPUTABLE: 'NOT_DISPUTABLE',
  LINE_NOT_FOUND: 'LINE_NOT_FOUND',
  EXCEEDS_DISPUTABLE: 'EXCEEDS_DISPUTABLE',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  DISPUTE_NOT_FOUND: 'DISPUTE_NOT_FOUND',
} as const;
export type DisputeDataErrorType = (typeof DisputeDataErrorTypes)[keyof typeof DisputeDataErrorTypes];

export class DisputeDataError extends Error {
  override name = 'DisputeDataError';
  constructor(
    readonly type: DisputeDataErrorType,
    message: string,
    /** The request field at fault, as the API names it ("invoiceId", "line", "amount"). */
    readonly field?: string,
    /** What may still be disputed, when that is the problem. */
    readonly disputableMinor?: number,
  ) {
    super(message);
  }
}

export const newDisputeId = () => `dsp_${crypto.randomUUID().replace(/-/g, '')}`;

interface DisputeRow {
  id: string;
  brand_id: string;
  customer_id: string;
  invoice_id: string;
  line_position: number | null;
  amount_minor: string | number;
  currency: string;
  reason: string;
  kind: Dispute['kind'];
  chargeback_id: string | null;
  payment_id: string | null;
  status: DisputeStatus;
  auto_decision: string | null;
  resolution: DisputeResolution | null;
  outcome: Dispute['outcome'];
  credited_minor: string | number;
  evidence: DisputeEvidence | null;
  decision: DisputeDecision | null;
  decision_deadline: Date | null;
  evidence_due_by: Date | null;
  evidence_submitted_at: Date | null;
  credit_note_id: string | null;
  opened_at: Date;
  resolved_at: Date | null;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

function fromRow(r: DisputeRow): Dispute {
  return {
    id: r.id,
    brandId: r.brand_id,
    customerId: r.customer_id,
    invoiceId: r.invoice_id,
    linePosition: r.line_position,
    amountMinor: Number(r.amount_minor),
    currency: String(r.currency).trim(),
    reason: r.reason,
    kind: r.kind,
    chargebackId: r.chargeback_id,
    paymentId: r.payment_id,
    status: r.status,
    autoDecision: r.auto_decision,
    resolution: r.resolution,
    outcome: r.outcome,
    creditedMinor: Number(r.credited_minor),
    evidence: r.evidence,
    decision: r.decision,
    decisionDeadline: iso(r.decision_deadline),
    evidenceDueBy: iso(r.evidence_due_by),
    evidenceSubmittedAt: iso(r.evidence_submitted_at),
    creditNoteId: r.credit_note_id,
    openedAt: new Date(r.opened_at).toISOString(),
    resolvedAt: iso(r.resolved_at),
  };
}

export async function getDispute(db: Trx, brandId: string, disputeId: string): Promise<Dispute | undefined> {
  const row = await db('disputes').where({ brand_id: brandId, id: disputeId }).first();
  return row ? fromRow(row) : undefined;
}

async function requireDispute(db: Trx, brandId: string, disputeId: string): Promise<Dispute> {
  const dispute = await getDispute(db, brandId, disputeId);
  if (!dispute) throw new DisputeDataError(DisputeDataErrorTypes.DISPUTE_NOT_FOUND, `dispute "${disputeId}" not found`);
  return dispute;
}

/** The dispute a gateway chargeback opened, for routing the gateway's later events about it. */
export async function disputeByChargeback(db: Trx, brandId: string, chargebackId: string): Promise<Dispute | undefined> {
  const row = await db('disputes').where({ brand_id: brandId, chargeback_id: chargebackId }).first();
  return row ? fromRow(row) : undefined;
}

/** The customer's disputes, newest first. */
export async function listCustomerDisputes(db: Db, brandId: string, customerId: string): Promise<Dispute[]> {
  const rows: DisputeRow[] = await db('disputes').where({ brand_id: brandId, customer_id: customerId }).orderBy([{ column: 'opened_at', order: 'desc' }, { column: 'id', order: 'desc' }]);
  return rows.map(fromRow);
}

/**
 * What a dispute claims against the invoice (or one line) so far: an unresolved dispute its whole
 * amount, a resolved one what it credited (that part is also gone from the invoice's creditable).
 */
async function claimedMinor(trx: Trx, brandId: string, invoiceId: string, line: number | null, openOnly: boolean): Promise<number> {
  let q = trx('disputes').where({ brand_id: brandId, invoice_id: invoiceId });
  if (line !== null) q = q.where({ line_position: line });
  const expr = openOnly
    ? `coalesce(sum(case when status <> 'resolved' then amount_minor else 0 end), 0)::text as claimed`
    : `coalesce(sum(case when status <> 'resolved' then amount_minor else credited_minor end), 0)::text as claimed`;
  const row = await q.first(trx.raw(expr));
  return Number(row?.claimed ?? 0);
}

export interface OpenCustomerDisputeInput {
  brandId: string;
  customerId: string;
  invoiceId: string;
  /** A line of the invoice; omitted disputes the whole invoice. */
  line?: number;
  /** Omitted: everything still disputable on the line or invoice. */
  amountMinor?: number;
  reason: string;
  idempotencyKey?: string;
}

const fingerprintOf = (i: OpenCustomerDisputeInput) =>
  crypto
    .createHash('sha256')
    .update(JSON.stringify([i.invoiceId, i.line ?? null, i.amountMinor ?? null, i.reason]))
    .digest('hex');

/**
 * Records a customer's dispute after checking it against the invoice in one transaction that
 * holds the invoice's row lock. A repeated Idempotency-Key returns the dispute it opened
 * (`created: false`); the same key with another request is refused. Throws DisputeDataError.
 */
export async function openCustomerDispute(db: Db, input: OpenCustomerDisputeInput): Promise<{ dispute: Dispute; created: boolean }> {
  const fingerprint = fingerprintOf(input);
  const attempt = () =>
    db.transaction(async (trx) => {
      if (input.idempotencyKey !== undefined) {
        const existing = await trx('disputes').where({ brand_id: input.brandId, customer_id: input.customerId, idempotency_key: input.idempotencyKey }).first();
        if (existing) {
          if (existing.request_fingerprint !== fingerprint) {
            throw new DisputeDataError(DisputeDataErrorTypes.IDEMPOTENCY_KEY_REUSED, 'this Idempotency-Key already opened a different dispute');
          }
          return { dispute: fromRow(existing), created: false };
        }
      }
      const customer = await trx('customers').where({ brand_id: input.brandId, id: input.customerId }).first('id');
      if (!customer) throw new DisputeDataError(DisputeDataErrorTypes.CUSTOMER_NOT_FOUND, `customer "${input.customerId}" not found`);
      const inv = await trx('invoices').where({ brand_id: input.brandId, id: input.invoiceId }).forUpdate().first();
      if (!inv || inv.customer_id !== input.customerId) {
        throw new DisputeDataError(DisputeDataErrorTypes.INVOICE_NOT_FOUND, `the customer has no invoice "${input.invoiceId}"`, 'invoiceId');
      }
      if (inv.kind === 'credit_note' || inv.status === 'void') {
        throw new DisputeDataError(DisputeDataErrorTypes.NOT_DISPUTABLE, `a ${inv.kind === 'credit_note' ? 'credit note' : 'void invoice'} cannot be disputed`, 'invoiceId');
      }
      const credits = await invoiceCredits(trx as unknown as Db, input.brandId, input.invoiceId);
      let disputable = (credits?.creditableMinor ?? 0) - (await claimedMinor(trx, input.brandId, input.invoiceId, null, true));
      if (input.line !== undefined) {
        const line = await trx('invoice_lines').where({ invoice_id: input.invoiceId, position: input.line }).first('amount_minor');
        if (!line) throw new DisputeDataError(DisputeDataErrorTypes.LINE_NOT_FOUND, `invoice "${input.invoiceId}" has no line ${input.line}`, 'line');
        const lineMinor = lineDisputableMinor(Number(line.amount_minor), {
          totalMinor: Number(inv.total_minor),
          taxMinor: Number(inv.tax_minor),
          taxInclusive: Boolean(inv.tax_inclusive),
        });
        const lineLeft = lineMinor - (await claimedMinor(trx, input.brandId, input.invoiceId, input.line, false));
        disputable = Math.min(disputable, lineLeft);
      }
      disputable = Math.max(0, disputable);
      if (disputable === 0) {
        throw new DisputeDataError(DisputeDataErrorTypes.EXCEEDS_DISPUTABLE, 'nothing is left to dispute: it is already credited or under dispute', input.amountMinor === undefined ? (input.line !== undefined ? 'line' : 'invoiceId') : 'amount', 0);
      }
      const amountMinor = input.amountMinor ?? disputable;
      if (amountMinor > disputable) {
        throw new DisputeDataError(DisputeDataErrorTypes.EXCEEDS_DISPUTABLE, `at most ${disputable} minor units can still be disputed`, 'amount', disputable);
      }
      const [row] = await trx('disputes')
        .insert({
          id: newDisputeId(),
          brand_id: input.brandId,
          customer_id: input.customerId,
          invoice_id: input.invoiceId,
          line_position: input.line ?? null,
          amount_minor: amountMinor,
          currency: inv.currency,
          reason: input.reason,
          kind: 'customer',
          idempotency_key: input.idempotencyKey ?? null,
          request_fingerprint: input.idempotencyKey !== undefined ? fingerprint : null,
        })
        .returning('*');
      return { dispute: fromRow(row), created: true };
    });
  try {
    return await attempt();
  } catch (err) {
    // Two requests with one key raced on different invoices: the loser answers as a repeat would.
    if ((err as { code?: string }).code === '23505' && input.idempotencyKey !== undefined) return attempt();
    throw err;
  }
}

/** Deletes a dispute nothing has acted on yet (the API could not hand it to the customer workflow). */
export async function withdrawUnstartedDispute(db: Db, brandId: string, disputeId: string): Promise<void> {
  await db('disputes').where({ brand_id: brandId, id: disputeId, status: 'open' }).whereNull('auto_decision').del();
}

export interface ChargebackInput {
  brandId: string;
  customerId: string;
  chargeback: {
    chargebackId: string;
    paymentId: string;
    invoiceId: string;
    amountMinor: number;
    currency: string;
    reason: string;
    evidenceDueBy: string;
  };
}

/**
 * Opens the dispute of a gateway chargeback, once per chargeback id however often it is
 * reported, and books the money the gateway took back in the same transaction.
 */
export async function openChargebackDispute(db: Db, input: ChargebackInput): Promise<{ disputeId: string; created: boolean }> {
  const cb = input.chargeback;
  return db.transaction(async (trx) => {
    const inserted = await trx('disputes')
      .insert({
        id: newDisputeId(),
        brand_id: input.brandId,
        customer_id: input.customerId,
        invoice_id: cb.invoiceId,
        line_position: null,
        amount_minor: cb.amountMinor,
        currency: cb.currency,
        reason: cb.reason,
        kind: 'chargeback',
        chargeback_id: cb.chargebackId,
        payment_id: cb.paymentId,
        evidence_due_by: new Date(cb.evidenceDueBy),
      })
      .onConflict(['brand_id', 'chargeback_id'])
      .ignore()
      .returning('id');
    if (inserted.length === 0) {
      const existing = await trx('disputes').where({ brand_id: input.brandId, chargeback_id: cb.chargebackId }).first('id');
      return { disputeId: existing.id as string, created: false };
    }
    const disputeId = inserted[0].id as string;
    await postTransaction(trx, {
      brandId: input.brandId,
      customerId: input.customerId,
      kind: 'chargeback',
      documentId: disputeId,
      currency: cb.currency,
      entries: chargebackLedgerEntries(cb.amountMinor, 'taken'),
    });
    return { disputeId, created: true };
  });
}

/**
 * The policy's first decision, made once: auto-credit, or why not. The customer's row is locked
 * while this period's automatic credits are counted and this one is marked, so two disputes
 * decided at the same moment cannot both slip under the cap. A repeat returns the recorded decision.
 */
export async function decideDisputeAutomatically(
  db: Db,
  input: { brandId: string; disputeId: string; periodKey: string; figures: DisputeFigures },
): Promise<AutomaticDecision> {
  return db.transaction(async (trx) => {
    const dispute = await requireDispute(trx, input.brandId, input.disputeId);
    const locked = await trx('customers').where({ brand_id: input.brandId, id: dispute.customerId }).forUpdate().first('id');
    if (!locked) throw new DisputeDataError(DisputeDataErrorTypes.CUSTOMER_NOT_FOUND, `customer "${dispute.customerId}" not found`);
    const again = await trx('disputes').where({ id: input.disputeId }).first('auto_decision');
    if (again.auto_decision) {
      return again.auto_decision === 'auto_credit' ? { action: 'auto_credit' } : ({ action: 'review', reason: again.auto_decision } as AutomaticDecision);
    }
    const used = await trx('disputes')
      .where({ brand_id: input.brandId, customer_id: dispute.customerId, auto_decision: 'auto_credit', auto_credit_period: input.periodKey })
      .first(trx.raw('count(*)::int as count'), trx.raw('coalesce(sum(amount_minor), 0)::text as credited'));
    const usage: AutoCreditUsage = { count: Number(used?.count ?? 0), creditedMinor: Number(used?.credited ?? 0) };
    const decision = decideAutomatically(dispute.amountMinor, input.figures, usage);
    await trx('disputes')
      .where({ id: input.disputeId })
      .update({
        auto_decision: decision.action === 'auto_credit' ? 'auto_credit' : decision.reason,
        auto_credit_period: decision.action === 'auto_credit' ? input.periodKey : null,
        status: decision.action === 'auto_credit' ? 'open' : 'evidence_gathering',
        updated_at: trx.fn.now(),
      });
    return decision;
  });
}

/** The usage, deliveries and payments behind a dispute, stored with it and returned. */
export async function gatherDisputeEvidence(db: Db, brandId: string, disputeId: string, gatheredAt: string): Promise<DisputeEvidence> {
  const dispute = await requireDispute(db, brandId, disputeId);
  let line: DisputeEvidence['line'] = null;
  let usage: DisputeEvidence['usage'] = null;
  if (dispute.linePosition !== null) {
    const l = await db('invoice_lines').where({ invoice_id: dispute.invoiceId, position: dispute.linePosition }).first();
    if (l) {
      line = {
        position: l.position,
        kind: l.kind,
        description: l.description,
        metric: l.metric,
        quantity: l.quantity === null ? null : String(l.quantity),
        amountMinor: Number(l.amount_minor),
        periodStart: iso(l.period_start),
        periodEnd: iso(l.period_end),
      };
      if (l.metric) {
        let q = db('usage_events').where({ brand_id: brandId, customer_id: dispute.customerId, invoice_id: dispute.invoiceId, metric: l.metric });
        if (l.period_start) q = q.where('occurred_at', '>=', l.period_start);
        if (l.period_end) q = q.where('occurred_at', '<', l.period_end);
        const u = await q.first(
          db.raw('count(*)::int as events'),
          db.raw('coalesce(sum(quantity), 0)::text as quantity'),
          db.raw('min(occurred_at) as first_at'),
          db.raw('max(occurred_at) as last_at'),
        );
        usage = {
          events: Number(u?.events ?? 0),
          quantity: String(u?.quantity ?? '0').replace(/\.?0+$/, '') || '0',
          firstAt: iso(u?.first_at ?? null),
          lastAt: iso(u?.last_at ?? null),
        };
      }
    }
  }
  const messages: Array<{ template: string; status: string }> = await db('outbound_messages')
    .where({ brand_id: brandId, customer_id: dispute.customerId })
    .whereRaw(`data->>'invoiceId' = ?`, [dispute.invoiceId])
    .select('template', 'status');
  const payments: Array<{ status: string; amount_minor: string; gateway_payment_id: string | null }> = await db('payments')
    .where({ brand_id: brandId, invoice_id: dispute.invoiceId })
    .select('status', 'amount_minor', 'gateway_payment_id');
  const succeeded = payments.filter((p) => p.status === 'succeeded');
  const evidence: DisputeEvidence = {
    line,
    usage,
    deliveries: {
      sent: messages.filter((m) => m.status === 'sent' || m.status === 'delivered').length,
      failed: messages.filter((m) => m.status === 'failed' || m.status === 'bounced').length,
      pending: messages.filter((m) => !['sent', 'delivered', 'failed', 'bounced'].includes(m.status)).length,
      templates: [...new Set(messages.map((m) => m.template))].sort(),
    },
    payments: {
      succeeded: succeeded.length,
      declined: payments.length - succeeded.length,
      paidMinor: succeeded.reduce((sum, p) => sum + Number(p.amount_minor), 0),
      gatewayPaymentIds: succeeded.flatMap((p) => (p.gateway_payment_id ? [p.gateway_payment_id] : [])),
    },
    gatheredAt,
  };
  await db('disputes').where({ brand_id: brandId, id: disputeId }).update({ evidence: JSON.stringify(evidence), updated_at: db.fn.now() });
  return evidence;
}

/**
 * Credits a dispute with a credit note (its ledger transaction included) through the one credit
 * note path, idempotent by the dispute id: a retry finds the note it issued. Credits at most what
 * the invoice still has creditable (a credit note issued meanwhile may have taken some of it).
 */
export async function creditDispute(
  db: Db,
  input: { brandId: string; disputeId: string; amountMinor: number; issuedAt: string },
): Promise<{ creditNoteId: string | null; creditedMinor: number }> {
  const dispute = await requireDispute(db, input.brandId, input.disputeId);
  const idempotencyKey = `dispute:${dispute.id}`;
  const existing = await db('invoices').where({ brand_id: input.brandId, customer_id: dispute.customerId, billing_key: `credit:${idempotencyKey}` }).first('id', 'total_minor');
  let note = existing ? { id: existing.id as string, creditedMinor: -Number(existing.total_minor) } : undefined;
  if (!note) {
    const credits = await invoiceCredits(db, input.brandId, dispute.invoiceId);
    const amountMinor = Math.min(input.amountMinor, dispute.amountMinor, credits?.creditableMinor ?? 0);
    if (amountMinor > 0) {
      // Should another note take what is left between this read and the note's lock, issuing
      // fails with EXCEEDS_CREDITABLE and the activity's retry credits what remains.
      const issued = await issueCreditNote(db, {
        brandId: input.brandId,
        invoiceId: dispute.invoiceId,
        amountMinor,
        reason: `Dispute ${dispute.id}${dispute.linePosition !== null ? ` (line ${dispute.linePosition})` : ''}: ${dispute.reason}`.slice(0, 500),
        idempotencyKey,
        issuedAt: input.issuedAt,
      });
      note = { id: issued.creditNoteId, creditedMinor: amountMinor };
    }
  }
  await db('disputes')
    .where({ brand_id: input.brandId, id: dispute.id })
    .update({ credit_note_id: note?.id ?? null, credited_minor: note?.creditedMinor ?? 0, updated_at: db.fn.now() });
  return { creditNoteId: note?.id ?? null, creditedMinor: note?.creditedMinor ?? 0 };
}

export async function markDisputeEscalated(db: Db, input: { brandId: string; disputeId: string; decisionDeadline: string }): Promise<void> {
  await db('disputes')
    .where({ brand_id: input.brandId, id: input.disputeId })
    .whereNot({ status: 'resolved' })
    .update({ status: 'escalated', decision_deadline: new Date(input.decisionDeadline), updated_at: db.fn.now() });
}

export async function markDisputeStatus(db: Db, input: { brandId: string; disputeId: string; status: Exclude<DisputeStatus, 'resolved' | 'escalated'> }): Promise<void> {
  await db('disputes').where({ brand_id: input.brandId, id: input.disputeId }).whereNot({ status: 'resolved' }).update({ status: input.status, updated_at: db.fn.now() });
}

export async function markEvidenceSubmitted(db: Db, input: { brandId: string; disputeId: string; submittedAt: string }): Promise<void> {
  await db('disputes')
    .where({ brand_id: input.brandId, id: input.disputeId })
    .whereNot({ status: 'resolved' })
    .update({ status: 'awaiting_gateway', evidence_submitted_at: new Date(input.submittedAt), updated_at: db.fn.now() });
}

/**
 * Marks the dispute resolved with its outcome; a repeat changes nothing. A chargeback the
 * merchant won books the money the gateway returns, in the same transaction.
 */
export async function recordDisputeOutcome(
  db: Db,
  input: { brandId: string; disputeId: string; outcome: NonNullable<Dispute['outcome']>; resolution: DisputeResolution; decision?: DisputeDecision; resolvedAt: string },
): Promise<Dispute> {
  return db.transaction(async (trx) => {
    const updated = await trx('disputes')
      .where({ brand_id: input.brandId, id: input.disputeId })
      .whereNot({ status: 'resolved' })
      .update({
        status: 'resolved',
        outcome: input.outcome,
        resolution: input.resolution,
        decision: input.decision ? JSON.stringify(input.decision) : null,
        resolved_at: new Date(input.resolvedAt),
        updated_at: trx.fn.now(),
      })
      .returning(['kind', 'customer_id', 'amount_minor', 'currency']);
    const row = updated[0];
    if (row && row.kind === 'chargeback' && input.outcome === 'won') {
      await postTransaction(trx, {
        brandId: input.brandId,
        customerId: row.customer_id,
        kind: 'chargeback_reversal',
        documentId: input.disputeId,
        currency: String(row.currency).trim(),
        entries: chargebackLedgerEntries(Number(row.amount_minor), 'returned'),
      });
    }
    return requireDispute(trx, input.brandId, input.disputeId);
  });
}
