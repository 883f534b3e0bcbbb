/**
 * Disputes over the API: a customer disputes an invoice or one line (the row is written here,
 * then the customer workflow is signalled and starts the dispute workflow); operators read
 * disputes and decide escalated ones through the dispute workflow's Update.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import {
  DisputeDataError,
  DisputeDataErrorTypes,
  getDispute,
  listCustomerDisputes,
  openCustomerDispute,
  withdrawUnstartedDispute,
} from '../data/disputes';
import { Dispute, DISPUTE_ID, DisputeErrorTypes } from '../domain/disputes';
import { CUSTOMER_ID, customerWorkflowId } from '../domain/ids';
import { formatMinor, money, parseAmount, toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { disputeDecisionUpdate } from '../workflows/dispute-shared';
import { disputeOpenedSignal, disputeWorkflowId, OperatorDecision } from '../workflows/shared';
import { ApiError, invalidFields } from './errors';
import { INVOICE_ID } from './invoices';
import { Api, ErrorSchema, MoneySchema, z } from './route';

export interface DisputeRoutesDeps {
  temporal: Client;
  db: Db;
  /** How long a signal or decision may take before the API answers 503 (default 10 s). */
  timeoutMs?: number;
}

const AMOUNT = z
  .string()
  .regex(/^\d{1,13}(\.\d{1,4})?$/, 'a positive decimal amount in the invoice currency, such as "0.04"')
  .refine((a) => /[1-9]/.test(a), 'must be greater than zero');

const CustomerParams = z.strictObject({
  id: z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit'),
});
const DisputeParams = z.strictObject({
  id: z.string().regex(DISPUTE_ID, 'a dispute id: "dsp_" and 32 lowercase hex digits').openapi({ example: 'dsp_0123456789abcdef0123456789abcdef' }),
});
const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1, 'must not be empty')
    .max(255, 'at most 255 characters')
    .optional()
    .openapi({ description: 'A repeat with the same key returns the dispute it opened, and opens no other' }),
});

export const OpenDisputeBody = z
  .strictObject({
    invoiceId: z.string().regex(INVOICE_ID, 'an invoice id: "inv_" and 32 lowercase hex digits').openapi({ example: 'inv_0123456789abcdef0123456789abcdef' }),
    line: z.number().int().min(1).max(100_000).optional().openapi({ description: "The disputed line's position; omit to dispute the whole invoice" }),
    amount: AMOUNT.optional().openapi({ description: 'Tax included; omit to dispute everything still disputable on the line or invoice', example: '0.04' }),
    reason: z.string().trim().min(1).max(500).openapi({ example: 'I never made these API calls' }),
  })
  .openapi('OpenDispute');

export const DecisionBody = z
  .strictObject({
    decision: z.enum(['accept', 'reject']),
    amount: AMOUNT.optional().openapi({ description: 'Accept part of the disputed amount; omit to accept all of it. Not allowed with reject' }),
    note: z.string().trim().min(1).max(1000).optional(),
  })
  .openapi('DisputeDecision');

export const DisputeSchema = z
  .object({
    id: z.string(),
    customerId: z.string(),
    invoiceId: z.string(),
    line: z.number().int().nullable(),
    kind: z.enum(['customer', 'chargeback']),
    chargebackId: z.string().nullable(),
    amount: MoneySchema,
    reason: z.string(),
    status: z.enum(['open', 'evidence_gathering', 'escalated', 'awaiting_gateway', 'resolved']),
    autoDecision: z.string().nullable().openapi({ description: '"auto_credit", or why the policy did not credit it at once' }),
    outcome: z.enum(['credited', 'rejected', 'won', 'lost']).nullable(),
    resolution: z.enum(['auto', 'rule', 'operator', 'default', 'gateway']).nullable(),
    credited: MoneySchema,
    creditNoteId: z.string().nullable(),
    decision: z.object({ decision: z.enum(['accept', 'reject']), amount: MoneySchema.nullable(), note: z.string().nullable() }).nullable(),
    decisionDeadline: z.string().nullable(),
    evidenceDueBy: z.string().nullable(),
    evidenceSubmittedAt: z.string().nullable(),
    evidence: z.record(z.string(), z.unknown()).nullable().openapi({ description: 'Usage behind the line, deliveries and payments, as gathered' }),
    openedAt: z.string(),
    resolvedAt: z.string().nullable(),
    links: z.object({ self: z.string(), invoice: z.string(), creditNote: z.string().nullable() }),
  })
  .openapi('Dispute');

export function disputeView(d: Dispute) {
  const m = (minor: number) => toMoneyJson(money(minor, d.currency));
  return {
    id: d.id,
    customerId: d.customerId,
    invoiceId: d.invoiceId,
    line: d.linePosition,
    kind: d.kind,
    chargebackId: d.chargebackId,
    amount: m(d.amountMinor),
    reason: d.reason,
    status: d.status,
    autoDecision: d.autoDecision,
    outcome: d.outcome,
    resolution: d.resolution,
    credited: m(d.creditedMinor),
    creditNoteId: d.creditNoteId,
    decision: d.decision
      ? { decision: d.decision.decision, amount: d.decision.amountMinor === undefined ? null : m(d.decision.amountMinor), note: d.decision.note ?? null }
      : null,
    decisionDeadline: d.decisionDeadline,
    evidenceDueBy: d.evidenceDueBy,
    evidenceSubmittedAt: d.evidenceSubmittedAt,
    evidence: (d.evidence as unknown as Record<string, unknown> | null) ?? null,
    openedAt: d.openedAt,
    resolvedAt: d.resolvedAt,
    links: { self: `/v1/disputes/${d.id}`, invoice: `/v1/invoices/${d.invoiceId}`, creditNote: d.creditNoteId ? `/v1/invoices/${d.creditNoteId}` : null },
  };
}

const customerNotFound = (id: string) => new ApiError(404, 'NOT_FOUND', `customer "${id}" not found`, [{ field: 'params.id', message: 'no customer with this id' }]);
const disputeNotFound = (id: string) => new ApiError(404, 'NOT_FOUND', `dispute "${id}" not found`, [{ field: 'params.id', message: 'no dispute with this id' }]);

function openProblem(err: DisputeDataError, customerId: string, currency: string | undefined): ApiError {
  const field = `body.${err.field ?? 'invoiceId'}`;
  switch (err.type) {
    case DisputeDataErrorTypes.CUSTOMER_NOT_FOUND:
      return customerNotFound(customerId);
    case DisputeDataErrorTypes.IDEMPOTENCY_KEY_REUSED:
      return new ApiError(409, err.type, err.message, [{ field: 'header.idempotency-key', message: 'already used for a different dispute' }]);
    case DisputeDataErrorTypes.EXCEEDS_DISPUTABLE: {
      const left = currency !== undefined && err.disputableMinor !== undefined ? `${currency} ${formatMinor(BigInt(err.disputableMinor), currency)}` : 'nothing';
      return new ApiError(422, err.type, `the dispute exceeds what can still be disputed (${left})`, [{ field, message: `at most ${left} can still be disputed` }]);
    }
    default:
      return new ApiError(422, err.type, err.message, [{ field, message: err.message }]);
  }
}

/** A validator's rejection ("TYPE: message") or a failed decision, as the client's 4xx. */
function decisionProblem(err: WorkflowUpdateFailedError): ApiError | undefined {
  const cause = err.cause as { type?: string; message?: string } | undefined;
  const message = cause?.message ?? err.message;
  const type = cause?.type && cause.type !== 'Error' ? cause.type : /^([A-Z_]+):/.exec(message)?.[1];
  const text = message.replace(/^[A-Z_]+:\s*/, '');
  switch (type) {
    case DisputeErrorTypes.NOT_AWAITING_DECISION:
    case DisputeErrorTypes.ALREADY_DECIDED:
      return new ApiError(409, type, text);
    case DisputeErrorTypes.DECISION_EXCEEDS_DISPUTE:
      return new ApiError(422, type, text, [{ field: 'body.amount', message: text }]);
    case DisputeErrorTypes.INVALID_DECISION:
      return invalidFields([{ field: 'body.amount', message: text }]);
    default:
      return undefined;
  }
}

const notAwaiting = (d: Dispute) =>
  new ApiError(409, DisputeErrorTypes.NOT_AWAITING_DECISION, `dispute ${d.id} is ${d.status}, not awaiting an operator's decision`, [
    { field: 'params.id', message: `the dispute is ${d.status}` },
  ]);

export function registerDisputeRoutes(api: Api, deps: DisputeRoutesDeps): void {
  const { temporal, db } = deps;
  const timeoutMs = deps.timeoutMs ?? 10_000;
  const unavailable = () => new ApiError(503, 'UNAVAILABLE', 'the dispute could not be handed to its workflow in time; retry with the same Idempotency-Key');

  async function loadDispute(brandId: string, id: string): Promise<Dispute> {
    const dispute = await getDispute(db, brandId, id);
    if (!dispute) throw disputeNotFound(id);
    return dispute;
  }

  api.route({
    method: 'post',
    path: '/v1/customers/:id/disputes',
    summary:
      "Dispute an invoice or one of its lines. The customer workflow starts the dispute's workflow: below the brand's handling cost it is credited at once; otherwise evidence decides or an operator does. Idempotent by Idempotency-Key",
    tag: 'disputes',
    params: CustomerParams,
    headers: IdempotencyHeaders,
    body: OpenDisputeBody,
    responses: {
      202: { description: 'Recorded; the dispute workflow works it. Location: the dispute', schema: DisputeSchema },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
      409: { description: 'IDEMPOTENCY_KEY_REUSED, or CUSTOMER_NOT_RUNNING: the customer has ended', schema: ErrorSchema },
      422: { description: 'INVOICE_NOT_FOUND, NOT_DISPUTABLE, LINE_NOT_FOUND or EXCEEDS_DISPUTABLE, naming the field', schema: ErrorSchema },
    },
    handler: async ({ params, body, headers, brand }) => {
      const invoice = await db('invoices').where({ brand_id: brand.id, id: body.invoiceId, customer_id: params.id }).first('currency');
      const currency = invoice ? String(invoice.currency).trim() : undefined;
      let amountMinor: number | undefined;
      if (body.amount !== undefined && currency) {
        try {
          amountMinor = Number(parseAmount(body.amount, currency).minor);
        } catch (err) {
          throw invalidFields([{ field: 'body.amount', message: (err as Error).message }]);
        }
      }
      let opened;
      try {
        opened = await openCustomerDispute(db, {
          brandId: brand.id,
          customerId: params.id,
          invoiceId: body.invoiceId,
          line: body.line,
          amountMinor,
          reason: body.reason,
          idempotencyKey: headers['idempotency-key'],
        });
      } catch (err) {
        if (err instanceof DisputeDataError) throw openProblem(err, params.id, currency);
        throw err;
      }
      const { dispute, created } = opened;
      // Sent again on a repeated request too: the customer workflow starts one dispute workflow per id.
      const handle = temporal.workflow.getHandle(customerWorkflowId(brand.id, params.id));
      try {
        await temporal.withDeadline(Date.now() + timeoutMs, () => handle.signal(disputeOpenedSignal, { disputeId: dispute.id }));
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          if (created) await withdrawUnstartedDispute(db, brand.id, dispute.id);
          throw new ApiError(409, 'CUSTOMER_NOT_RUNNING', `customer "${params.id}" has ended; its invoices can no longer be disputed here`, [
            { field: 'params.id', message: 'the customer has ended' },
          ]);
        }
        if ((err as { code?: number }).code === 4 /* DEADLINE_EXCEEDED */) throw unavailable();
        throw err;
      }
      return { status: 202, body: disputeView(dispute), headers: { Location: `/v1/disputes/${dispute.id}` } };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/customers/:id/disputes',
    summary: "The customer's disputes and chargebacks, newest first",
    tag: 'disputes',
    params: CustomerParams,
    responses: {
      200: { description: 'The disputes', schema: z.object({ data: z.array(DisputeSchema) }) },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      if (!(await db('customers').where({ brand_id: brand.id, id: params.id }).first('id'))) throw customerNotFound(params.id);
      return { status: 200, body: { data: (await listCustomerDisputes(db, brand.id, params.id)).map(disputeView) } };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/disputes/:id',
    summary: 'A dispute: its state, evidence, decision and outcome',
    tag: 'disputes',
    params: DisputeParams,
    responses: {
      200: { description: 'The dispute', schema: DisputeSchema },
      404: { description: 'No such dispute for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => ({ status: 200, body: disputeView(await loadDispute(brand.id, params.id)) }),
  });

  api.route({
    method: 'post',
    path: '/v1/disputes/:id/decision',
    summary: "An operator's decision on an escalated dispute: accept (all or part) writes a credit note, reject writes none. Answers once it is carried out",
    tag: 'disputes',
    params: DisputeParams,
    body: DecisionBody,
    responses: {
      200: { description: 'Decided and carried out', schema: DisputeSchema },
      404: { description: 'No such dispute for this brand', schema: ErrorSchema },
      409: { description: 'NOT_AWAITING_DECISION (not escalated, or past its deadline) or ALREADY_DECIDED', schema: ErrorSchema },
      422: { description: 'DECISION_EXCEEDS_DISPUTE: body.amount is more than the disputed amount', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      const dispute = await loadDispute(brand.id, params.id);
      if (body.decision === 'reject' && body.amount !== undefined) {
        throw invalidFields([{ field: 'body.amount', message: 'a rejection credits nothing: omit amount' }]);
      }
      let amountMinor: number | undefined;
      if (body.amount !== undefined) {
        try {
          amountMinor = Number(parseAmount(body.amount, dispute.currency).minor);
        } catch (err) {
          throw invalidFields([{ field: 'body.amount', message: (err as Error).message }]);
        }
        if (amountMinor > dispute.amountMinor) {
          const disputed = `${dispute.currency} ${formatMinor(BigInt(dispute.amountMinor), dispute.currency)}`;
          throw new ApiError(422, DisputeErrorTypes.DECISION_EXCEEDS_DISPUTE, `the decision credits more than the ${disputed} disputed`, [
            { field: 'body.amount', message: `at most ${disputed}` },
          ]);
        }
      }
      if (dispute.status !== 'escalated') throw notAwaiting(dispute);
      const decision: OperatorDecision = { decision: body.decision, ...(amountMinor !== undefined ? { amountMinor } : {}), ...(body.note ? { note: body.note } : {}) };
      try {
        await temporal.withDeadline(Date.now() + timeoutMs, () =>
          temporal.workflow.getHandle(disputeWorkflowId(brand.id, dispute.id)).executeUpdate(disputeDecisionUpdate, { args: [decision] }),
        );
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw notAwaiting(dispute);
        if (err instanceof WorkflowUpdateFailedError) throw decisionProblem(err) ?? err;
        if ((err as { code?: number }).code === 4 /* DEADLINE_EXCEEDED */) {
          throw new ApiError(503, 'UNAVAILABLE', 'the decision was not carried out in time; read the dispute to see whether it was');
        }
        throw err;
      }
      return { status: 200, body: disputeView(await loadDispute(brand.id, dispute.id)) };
    },
  });
}
