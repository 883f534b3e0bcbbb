/**
 * Changing what a customer subscribes to: plan changes (upgrade now with proration, downgrade at
 * the period's end, withdraw a scheduled one) and cancellation (now or at the period's end). Each
 * is a Workflow Update, so the caller gets the proration or a clear rejection synchronously and a
 * rejected request changes nothing.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { latestPlan } from '../data/plans';
import { CUSTOMER_ID, customerWorkflowId } from '../domain/ids';
import type { DraftLine } from '../domain/invoice';
import { toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { cancelUpdate, changePlanUpdate, ErrorTypes, withdrawPlanChangeUpdate } from '../workflows/shared';
import { ApiError, notFound } from './errors';
import { Api, ErrorSchema, MoneySchema as Money, z } from './route';

export interface SubscriptionRoutesDeps {
  temporal: Client;
  db: Db;
}

const IdParams = z.strictObject({ id: z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit') });
const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,100}$/, '1-100 letters, digits, "_", ".", ":" or "-"')
    .optional()
    .openapi({ description: 'A repeat with the same key is the same change (one invoice, one result)' }),
});

const PlanChangeBody = z
  .strictObject({
    plan: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'a plan code').openapi({ example: 'pro' }),
    when: z
      .enum(['now', 'period_end'])
      .optional()
      .openapi({ description: 'Upgrades default to now; downgrades (a lower fee) always wait for the end of the period' }),
  })
  .openapi('PlanChangeRequest');

const CancelBody = z
  .strictObject({
    when: z.enum(['now', 'period_end']).openapi({ description: 'now: final invoice with a credit for the unused time; period_end: no renewal' }),
    reason: z.string().trim().min(1).max(500).optional(),
  })
  .openapi('CancelRequest');

const ProrationLine = z.object({
  description: z.string(),
  amount: Money,
  periodStart: z.string().nullable(),
  periodEnd: z.string().nullable(),
  remainingSeconds: z.number().int(),
  totalSeconds: z.number().int(),
});
const Proration = z
  .object({
    rule: z.string(),
    lines: z.array(ProrationLine),
    net: Money,
  })
  .openapi('Proration');
const InvoiceBrief = z.object({ id: z.string(), number: z.string(), total: Money, amountDue: Money }).nullable();

const PlanChangeResponse = z
  .object({
    changeId: z.string(),
    direction: z.enum(['upgrade', 'downgrade']),
    status: z.enum(['applied', 'scheduled']),
    from: z.object({ planCode: z.string(), planVersion: z.number().int() }),
    to: z.object({ planCode: z.string(), planVersion: z.number().int(), planName: z.string() }),
    effectiveAt: z.string(),
    proration: Proration,
    invoice: InvoiceBrief,
    entitlements: z.object({ features: z.array(z.string()), quotas: z.record(z.string(), z.number()) }),
  })
  .openapi('PlanChange');

const CancelResponse = z
  .object({
    stage: z.string(),
    cancellation: z.object({ when: z.string(), requestedAt: z.string(), effectiveAt: z.string(), reason: z.string().nullable(), done: z.boolean() }),
    proration: Proration,
    finalInvoice: InvoiceBrief,
  })
  .openapi('Cancellation');

export const PRORATION_RULE =
  'the unused part of a fee is fee × remaining whole seconds of the period ÷ the period’s seconds, rounded once, half away from zero, to the minor unit';

function proration(lines: DraftLine[], currency: string) {
  const money = (minor: number) => toMoneyJson({ minor: BigInt(minor), currency });
  return {
    rule: PRORATION_RULE,
    lines: lines.map((l) => ({
      description: l.description,
      amount: money(l.amountMinor),
      periodStart: l.periodStart,
      periodEnd: l.periodEnd,
      remainingSeconds: Number(l.detail.remainingSeconds),
      totalSeconds: Number(l.detail.totalSeconds),
    })),
    net: money(lines.reduce((s, l) => s + l.amountMinor, 0)),
  };
}

function invoiceBrief(i: { invoiceId: string; number: string; currency: string; totalMinor: number; amountDueMinor: number } | null) {
  if (!i) return null;
  const money = (minor: number) => toMoneyJson({ minor: BigInt(minor), currency: i.currency });
  return { id: i.invoiceId, number: i.number, total: money(i.totalMinor), amountDue: money(i.amountDueMinor) };
}

const STATUS_BY_TYPE: Record<string, { status: number; field?: string }> = {
  [ErrorTypes.INVALID_INPUT]: { status: 400 },
  [ErrorTypes.PLAN_NOT_FOUND]: { status: 422, field: 'body.plan' },
  [ErrorTypes.SAME_PLAN]: { status: 422, field: 'body.plan' },
  [ErrorTypes.INCOMPATIBLE_PLAN]: { status: 422, field: 'body.plan' },
  [ErrorTypes.DOWNGRADE_AT_PERIOD_END]: { status: 422, field: 'body.when' },
  [ErrorTypes.NOT_ACTIVE]: { status: 409 },
  [ErrorTypes.CANCELLATION_PENDING]: { status: 409 },
  [ErrorTypes.PLAN_CHANGE_IN_PROGRESS]: { status: 409 },
  [ErrorTypes.NO_SCHEDULED_CHANGE]: { status: 404 },
};

/**
 * An update's rejection (validators say "<TYPE>: message") or failure (an ApplicationFailure
 * with a type), as the 4xx the client gets; undefined for anything else.
 */
export function updateRejection(err: unknown, statusByType: Record<string, { status: number; field?: string }>): ApiError | undefined {
  if (!(err instanceof WorkflowUpdateFailedError)) return undefined;
  const cause = err.cause as { type?: string; message?: string } | undefined;
  const message = cause?.message ?? err.message;
  const type = cause?.type && cause.type !== 'Error' ? cause.type : /^([A-Z_]+):/.exec(message)?.[1];
  const known = type ? statusByType[type] : undefined;
  if (!type || !known) return undefined;
  const text = message.replace(/^[A-Z_]+:\s*/, '');
  return new ApiError(known.status, type, text, known.field ? [{ field: known.field, message: text }] : undefined);
}

export function registerSubscriptionRoutes(api: Api, { temporal, db }: SubscriptionRoutesDeps): void {
  async function update<R>(brandId: string, customerId: string, run: (handle: ReturnType<Client['workflow']['getHandle']>) => Promise<R>): Promise<R> {
    try {
      return await run(temporal.workflow.getHandle(customerWorkflowId(brandId, customerId)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`customer "${customerId}"`);
      throw updateRejection(err, STATUS_BY_TYPE) ?? err;
    }
  }

  api.route({
    method: 'post',
    path: '/v1/customers/:id/plan-changes',
    summary:
      'Change plan. An upgrade applies now: entitlements change at once and one invoice bills the usage so far at the old prices, a credit for the unused part of the old fee and the rest of the period on the new plan. A downgrade is scheduled for the end of the period',
    tag: 'customers',
    params: IdParams,
    headers: IdempotencyHeaders,
    body: PlanChangeBody,
    responses: {
      200: { description: 'Applied (with the proration and its invoice) or scheduled', schema: PlanChangeResponse },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
      409: { description: 'Not active, cancelling, or another change is being applied', schema: ErrorSchema },
      422: { description: 'Unknown plan, the same plan, a plan with another currency or billing period, or a downgrade asked for now', schema: ErrorSchema },
    },
    handler: async ({ params, body, headers, brand }) => {
      // The catalog check the workflow's validator cannot make (no I/O there): nothing starts for an unknown plan.
      if (!(await latestPlan(db, brand.id, body.plan))) {
        throw new ApiError(422, ErrorTypes.PLAN_NOT_FOUND, `plan "${body.plan}" does not exist`, [{ field: 'body.plan', message: 'no such plan in this brand’s catalog' }]);
      }
      const key = headers['idempotency-key'];
      const result = await update(brand.id, params.id, (handle) =>
        handle.executeUpdate(changePlanUpdate, {
          args: [{ plan: body.plan, when: body.when, ...(key ? { changeId: key } : {}) }],
          ...(key ? { updateId: `plan-change:${key}` } : {}),
        }),
      );
      const currency = result.invoice?.currency ?? brand.currency;
      return {
        status: 200,
        body: {
          changeId: result.changeId,
          direction: result.direction,
          status: result.status,
          from: result.from,
          to: result.to,
          effectiveAt: result.effectiveAt,
          proration: proration(result.prorationLines, currency),
          invoice: invoiceBrief(result.invoice),
          entitlements: result.entitlements,
        },
      };
    },
  });

  api.route({
    method: 'delete',
    path: '/v1/customers/:id/plan-changes/scheduled',
    summary: 'Withdraw the plan change scheduled for the end of the period',
    tag: 'customers',
    params: IdParams,
    responses: {
      200: {
        description: 'The withdrawn change',
        schema: z.object({ changeId: z.string(), requestedAt: z.string(), effectiveAt: z.string(), to: z.object({ code: z.string(), version: z.number().int(), name: z.string() }) }),
      },
      404: { description: 'No such customer, or no change is scheduled', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const withdrawn = await update(brand.id, params.id, (handle) => handle.executeUpdate(withdrawPlanChangeUpdate, { args: [] }));
      return {
        status: 200,
        body: { changeId: withdrawn.changeId, requestedAt: withdrawn.requestedAt, effectiveAt: withdrawn.effectiveAt, to: { code: withdrawn.to.code, version: withdrawn.to.version, name: withdrawn.to.name } },
      };
    },
  });

  api.route({
    method: 'post',
    path: '/v1/customers/:id/cancel',
    summary:
      'Cancel now (final invoice: usage so far and a credit for the unused time; entitlements removed) or at the end of the period (no renewal). The customer workflow ends after the final invoice is collected or written off and open disputes are resolved',
    tag: 'customers',
    params: IdParams,
    body: CancelBody,
    responses: {
      200: { description: 'Cancelled, or scheduled to end with the period', schema: CancelResponse },
      400: { description: 'Invalid request', schema: ErrorSchema },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
      409: { description: 'Not active, already cancelling, or a plan change is being applied', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      const result = await update(brand.id, params.id, (handle) => handle.executeUpdate(cancelUpdate, { args: [{ when: body.when, ...(body.reason ? { reason: body.reason } : {}) }] }));
      return {
        status: 200,
        body: {
          stage: result.stage,
          cancellation: result.cancellation,
          proration: proration(result.prorationLines, result.finalInvoice?.currency ?? brand.currency),
          finalInvoice: invoiceBrief(result.finalInvoice),
        },
      };
    },
  });
}
