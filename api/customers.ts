/** /v1/customers: sign up (idempotently), activate leads, and read customer workflows. */
import crypto from 'node:crypto';
import {
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  type Client,
} from '@temporalio/client';
import { loadOfferInputs } from '../data/offers';
import { latestPlan } from '../data/plans';
import { CUSTOMER_ID, customerWorkflowId } from '../domain/ids';
import { toMoneyJson } from '../domain/money';
import { chooseOffer, type Buyer } from '../domain/offers';
import type { Db } from '../infra/db';
import { customerWorkflow } from '../workflows/customer';
import {
  ActivateInput,
  activateUpdate,
  ActivationResult,
  CustomerState,
  ErrorTypes,
  getCustomerQuery,
  PAYMENT_TOKEN,
  SA,
  updatePaymentMethodUpdate,
} from '../workflows/shared';
import type { Brand } from './auth';
import { ApiError, notFound } from './errors';
import { updateRejection } from './subscriptions';
import { Api, ErrorSchema, z, MoneySchema as Money } from './route';

export interface CustomerRoutesDeps {
  temporal: Client;
  db: Db;
  taskQueue: string;
  /** How long a query may take before the API answers 503 (no worker, server down). */
  queryTimeoutMs?: number;
}

const CustomerId = z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit');
const PlanCode = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,39}$/, 'a plan code');
const PaymentMethod = z.string().regex(PAYMENT_TOKEN, 'a payment method token from the gateway, such as "tok_visa"');
const Attr = z.string().min(1).max(64);
const BuyerAttributes = z
  .strictObject({
    segment: Attr.optional(),
    country: z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166-1 alpha-2 country code such as "DE"').optional(),
    source: Attr.optional(),
    campaign: Attr.optional(),
    volume: z.number().int().min(0).max(1e12).optional(),
  })
  .openapi('BuyerAttributes');

export const CreateCustomerBody = z
  .strictObject({
    id: CustomerId.openapi({ example: 'cus_42' }),
    email: z.email().max(254).openapi({ example: 'ada@example.com' }),
    name: z.string().trim().min(1).max(200).optional().openapi({ example: 'Ada Lovelace' }),
    plan: PlanCode.optional().openapi({ description: 'Omit to let the offer engine choose from `attributes`' }),
    paymentMethod: PaymentMethod,
    attributes: BuyerAttributes.optional(),
  })
  .openapi('CreateCustomer');

const PaymentMethodBody = z.strictObject({ paymentMethod: PaymentMethod }).openapi('PaymentMethod');
const PaymentMethodResponse = z
  .object({
    stage: z.string(),
    dunningState: z.string(),
    collected: z.boolean(),
    balance: Money,
  })
  .openapi('PaymentMethodResult');

export const ActivateBody = z
  .strictObject({
    plan: PlanCode.optional().openapi({ description: 'Omit to let the offer engine choose' }),
    paymentMethod: PaymentMethod,
    attributes: BuyerAttributes.optional(),
  })
  .openapi('Activate');

const Period = z.object({ number: z.number().int(), start: z.string(), end: z.string() });

export const CustomerSchema = z
  .object({
    id: z.string(),
    brand: z.string(),
    email: z.string(),
    name: z.string().nullable(),
    stage: z.enum(['lead', 'active', 'past_due', 'suspended', 'cancelled', 'lead_expired']),
    createdAt: z.string(),
    plan: z.object({ code: z.string(), version: z.number().int(), name: z.string() }).nullable(),
    subscription: z
      .object({
        id: z.string(),
        price: Money,
        discountPercent: z.number(),
        discountPeriods: z.number().int().nullable(),
        offerRule: z.string().nullable(),
        billingPeriod: z.string(),
        startedAt: z.string(),
      })
      .nullable(),
    entitlements: z.object({ features: z.array(z.string()), quotas: z.record(z.string(), z.number()) }).nullable(),
    currentPeriod: Period.nullable(),
    balance: Money,
    dunningState: z.string(),
    lead: z
      .object({ source: z.string(), campaign: z.string(), capturedAt: z.string(), expiresAt: z.string().nullable(), nurtureSent: z.number().int() })
      .nullable(),
    lastActivationError: z.object({ type: z.string(), message: z.string(), at: z.string() }).nullable(),
    chargebacks: z.array(
      z.object({
        chargebackId: z.string(),
        paymentId: z.string(),
        invoiceId: z.string(),
        amount: Money,
        reason: z.string(),
        evidenceDueBy: z.string(),
        receivedAt: z.string(),
      }),
    ),
    planChanges: z.object({
      scheduled: z.object({ changeId: z.string(), effectiveAt: z.string(), plan: z.object({ code: z.string(), version: z.number().int(), name: z.string() }) }).nullable(),
      history: z.array(
        z.object({
          changeId: z.string(),
          direction: z.enum(['upgrade', 'downgrade']).nullable(),
          status: z.enum(['applied', 'scheduled', 'withdrawn', 'rejected']),
          fromPlan: z.string(),
          toPlan: z.string(),
          at: z.string(),
          reason: z.object({ type: z.string(), message: z.string() }).optional(),
        }),
      ),
    }),
    cancellation: z
      .object({ when: z.enum(['now', 'period_end']), requestedAt: z.string(), effectiveAt: z.string(), reason: z.string().nullable(), done: z.boolean() })
      .nullable(),
    openDisputes: z.array(z.string()).openapi({ description: 'Disputes whose workflow is still running (GET /v1/disputes/:id)' }),
    dunning: z
      .object({
        startedAt: z.string(),
        retriesDone: z.number().int(),
        hardDeclined: z.boolean(),
        suspended: z.boolean(),
        lastDecline: z.object({ code: z.string(), message: z.string(), at: z.string() }),
      })
      .nullable(),
  })
  .openapi('Customer');

const SignupResult = CustomerSchema.extend({
  offer: z.object({ rule: z.string().nullable(), reason: z.string(), firstPeriodPrice: Money }),
  credential: z.object({ prefix: z.string(), secret: z.string() }).openapi({ description: "The customer's service credential; shown only in this response" }),
}).openapi('Activation');

const IdParams = z.strictObject({ id: CustomerId });

export function customerView(s: CustomerState, brand: Brand) {
  const currency = s.subscription?.currency ?? brand.currency;
  return {
    id: s.customerId,
    brand: s.brandId,
    email: s.email,
    name: s.name,
    stage: s.stage,
    createdAt: s.createdAt,
    plan: s.subscription ? { code: s.subscription.planCode, version: s.subscription.planVersion, name: s.subscription.planName } : null,
    subscription: s.subscription
      ? {
          id: s.subscription.id,
          price: toMoneyJson({ minor: BigInt(s.subscription.listPriceMinor), currency }),
          discountPercent: s.subscription.discountPercent,
          discountPeriods: s.subscription.discountPeriods,
          offerRule: s.subscription.offerRule,
          billingPeriod: s.subscription.billingPeriod,
          startedAt: s.subscription.startedAt,
        }
      : null,
    entitlements: s.entitlements,
    currentPeriod: s.currentPeriod,
    balance: toMoneyJson({ minor: BigInt(s.balanceMinor), currency }),
    dunningState: s.dunningState,
    lead: s.lead
      ? { source: s.lead.source, campaign: s.lead.campaign, capturedAt: s.lead.capturedAt, expiresAt: s.lead.expiresAt, nurtureSent: s.lead.nurtureSent }
      : null,
    lastActivationError: s.lastActivationError,
    chargebacks: s.chargebacks.map(({ amountMinor, currency: cbCurrency, ...c }) => ({ ...c, amount: toMoneyJson({ minor: BigInt(amountMinor), currency: cbCurrency }) })),
    planChanges: {
      scheduled: s.planChanges?.scheduled
        ? { changeId: s.planChanges.scheduled.changeId, effectiveAt: s.planChanges.scheduled.effectiveAt, plan: { code: s.planChanges.scheduled.to.code, version: s.planChanges.scheduled.to.version, name: s.planChanges.scheduled.to.name } }
        : null,
      history: s.planChanges?.history ?? [],
    },
    cancellation: s.cancellation ?? null,
    openDisputes: s.openDisputes ?? [],
    dunning: s.dunning
      ? {
          startedAt: s.dunning.startedAt,
          retriesDone: s.dunning.retriesDone,
          hardDeclined: s.dunning.hardDeclined,
          suspended: s.dunning.suspended,
          lastDecline: s.dunning.lastDecline,
        }
      : null,
  };
}

/** The service credential is made here and shown once; Temporal only ever sees its hash. */
function newCredential(): { secret: string; hash: string; prefix: string } {
  const secret = `cs_${crypto.randomBytes(24).toString('base64url')}`;
  return { secret, hash: crypto.createHash('sha256').update(secret).digest('hex'), prefix: secret.slice(0, 10) };
}

/** Update rejections and failures of activation and payment-method updates, by their stable type. */
const ACTIVATION_STATUS: Record<string, { status: number; field?: string }> = {
  [ErrorTypes.ALREADY_ACTIVE]: { status: 409 },
  [ErrorTypes.NOT_A_LEAD]: { status: 409 },
  [ErrorTypes.NOT_ACTIVE]: { status: 409 },
  [ErrorTypes.ACTIVATION_IN_PROGRESS]: { status: 409 },
  [ErrorTypes.INVALID_PAYMENT_METHOD]: { status: 400, field: 'body.paymentMethod' },
  [ErrorTypes.PLAN_NOT_FOUND]: { status: 422, field: 'body.plan' },
  [ErrorTypes.NO_OFFER]: { status: 422, field: 'body.plan' },
};

function activationError(err: unknown): ApiError | undefined {
  const rejection = updateRejection(err, ACTIVATION_STATUS);
  if (rejection) return rejection;
  // A provisioning failure was rolled back: the lead is unchanged and the caller may retry.
  const failure = updateRejection(err, { [ErrorTypes.PROVISIONING_FAILED]: { status: 503 } });
  return failure ? new ApiError(503, failure.code, `${failure.message}; the customer is unchanged, retry later`) : undefined;
}

export function registerCustomerRoutes(api: Api, deps: CustomerRoutesDeps): void {
  const { temporal, taskQueue, db } = deps;
  const queryTimeoutMs = deps.queryTimeoutMs ?? 10_000;

  async function readCustomer(brandId: string, customerId: string): Promise<CustomerState> {
    const handle = temporal.workflow.getHandle(customerWorkflowId(brandId, customerId));
    try {
      return await temporal.withDeadline(Date.now() + queryTimeoutMs, () => handle.query(getCustomerQuery));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notFound(`customer "${customerId}"`);
      if ((err as { code?: number }).code === 4 /* DEADLINE_EXCEEDED */) {
        throw new ApiError(503, 'UNAVAILABLE', 'customer state is temporarily unavailable; retry shortly');
      }
      throw err;
    }
  }

  /**
   * Catalog checks the workflow's validator cannot make (it does no I/O), done before anything
   * is started so a request naming an unknown plan, or matching no offer, changes nothing.
   */
  async function precheckOffer(brand: Brand, plan: string | undefined, buyer: Buyer): Promise<void> {
    if (plan) {
      if (!(await latestPlan(db, brand.id, plan))) {
        throw new ApiError(422, ErrorTypes.PLAN_NOT_FOUND, `plan "${plan}" does not exist`, [{ field: 'body.plan', message: 'unknown plan' }]);
      }
      return;
    }
    const inputs = await loadOfferInputs(db, brand.id);
    if (!chooseOffer({ ...inputs, buyer }).offer) {
      throw new ApiError(422, ErrorTypes.NO_OFFER, 'no offer matches these attributes; name a plan', [
        { field: 'body.plan', message: 'required when no offer rule matches' },
      ]);
    }
  }

  function activationResponse(result: ActivationResult, state: CustomerState, brand: Brand, secret: string) {
    return {
      ...customerView(state, brand),
      offer: {
        rule: result.offer.rule,
        reason: result.offer.reason,
        firstPeriodPrice: toMoneyJson({ minor: BigInt(result.offer.firstPeriodPriceMinor), currency: result.offer.currency }),
      },
      credential: { prefix: secret.slice(0, 10), secret },
    };
  }

  api.route({
    method: 'post',
    path: '/v1/customers',
    summary: 'Sign up a customer directly with a plan (or the offer engine’s choice) and a payment method; idempotent by id',
    tag: 'customers',
    body: CreateCustomerBody,
    responses: {
      201: { description: 'Customer created and provisioned', schema: SignupResult },
      200: { description: 'The customer already existed with the same details', schema: CustomerSchema },
      409: { description: 'A customer with this id exists with different details, or has ended', schema: ErrorSchema },
      422: { description: 'Unknown plan, or no offer for these attributes', schema: ErrorSchema },
      503: { description: 'Provisioning failed and was rolled back; nothing changed', schema: ErrorSchema },
    },
    handler: async ({ body, brand }) => {
      const workflowId = customerWorkflowId(brand.id, body.id);
      const location = `/v1/customers/${encodeURIComponent(body.id)}`;
      const buyer: Buyer = body.attributes ?? {};

      const existing = await readCustomer(brand.id, body.id).catch((err) => {
        if (err instanceof ApiError && err.status === 404) return undefined;
        throw err;
      });
      if (existing) {
        const conflicts = (['email', 'name'] as const).filter(
          (f) => body[f] !== undefined && body[f] !== (f === 'name' ? existing.name : existing.email),
        );
        if (body.plan && existing.subscription && existing.subscription.planCode !== body.plan) conflicts.push('plan' as never);
        if (conflicts.length > 0) {
          throw new ApiError(
            409,
            'CUSTOMER_EXISTS',
            `customer "${body.id}" already exists with a different ${conflicts.join(' and ')}`,
            conflicts.map((f) => ({ field: `body.${f}`, message: 'differs from the existing customer' })),
          );
        }
        if (existing.stage !== 'lead') return { status: 200, body: customerView(existing, brand), headers: { Location: location } };
      }

      await precheckOffer(brand, body.plan, buyer);
      const credential = newCredential();
      const activation: ActivateInput = {
        plan: body.plan,
        paymentMethod: body.paymentMethod,
        buyer,
        credential: { hash: credential.hash, prefix: credential.prefix },
      };
      const startWorkflowOperation = new WithStartWorkflowOperation(customerWorkflow, {
        workflowId,
        taskQueue,
        args: [{ brandId: brand.id, customerId: body.id, email: body.email, name: body.name }],
        // An existing run receives the update (and its validator decides); an ended customer
        // id is never reused.
        workflowIdConflictPolicy: 'USE_EXISTING',
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: SA.customerId, value: body.id },
          { key: SA.brandId, value: brand.id },
          { key: SA.stage, value: 'lead' },
        ],
      });
      let result: ActivationResult;
      try {
        result = await temporal.workflow.executeUpdateWithStart(activateUpdate, { args: [activation], startWorkflowOperation });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new ApiError(409, 'CUSTOMER_ENDED', `customer "${body.id}" has ended and its id cannot be reused`, [
            { field: 'body.id', message: 'belongs to an ended customer' },
          ]);
        }
        const mapped = activationError(err);
        if (mapped?.code === ErrorTypes.ALREADY_ACTIVE) {
          // Raced with an identical request: same customer.
          return { status: 200, body: customerView(await readCustomer(brand.id, body.id), brand), headers: { Location: location } };
        }
        throw mapped ?? err;
      }
      const state = await readCustomer(brand.id, body.id);
      return { status: 201, body: activationResponse(result, state, brand, credential.secret), headers: { Location: location } };
    },
  });

  api.route({
    method: 'post',
    path: '/v1/customers/:id/activate',
    summary: 'Convert a lead: the offer engine picks (or checks) the plan, then provisioning runs as a saga',
    tag: 'customers',
    params: IdParams,
    body: ActivateBody,
    responses: {
      200: { description: 'Activated and provisioned', schema: SignupResult },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
      409: { description: 'Already active, not a lead any more, or an activation is in progress', schema: ErrorSchema },
      422: { description: 'Unknown plan, or no offer for these attributes', schema: ErrorSchema },
      503: { description: 'Provisioning failed and was rolled back; the lead is unchanged', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      const state = await readCustomer(brand.id, params.id);
      if (state.stage !== 'lead') {
        const code = state.stage === 'lead_expired' || state.stage === 'cancelled' ? ErrorTypes.NOT_A_LEAD : ErrorTypes.ALREADY_ACTIVE;
        throw new ApiError(409, code, `customer is ${state.stage}`);
      }
      const buyer: Buyer = { ...(state.lead ? { source: state.lead.source, campaign: state.lead.campaign } : {}), ...body.attributes };
      await precheckOffer(brand, body.plan, buyer);
      const credential = newCredential();
      const handle = temporal.workflow.getHandle(customerWorkflowId(brand.id, params.id));
      let result: ActivationResult;
      try {
        result = await handle.executeUpdate(activateUpdate, {
          args: [{ plan: body.plan, paymentMethod: body.paymentMethod, buyer: body.attributes, credential: { hash: credential.hash, prefix: credential.prefix } }],
        });
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw notFound(`customer "${params.id}"`);
        throw activationError(err) ?? err;
      }
      const after = await readCustomer(brand.id, params.id);
      return { status: 200, body: activationResponse(result, after, brand, credential.secret) };
    },
  });

  api.route({
    method: 'post',
    path: '/v1/customers/:id/payment-method',
    summary: 'Save a new payment token; in dunning it is charged at once and, when it pays, ends dunning and restores the service',
    tag: 'customers',
    params: IdParams,
    body: PaymentMethodBody,
    responses: {
      200: { description: 'Saved; `collected` says whether outstanding invoices were paid with it', schema: PaymentMethodResponse },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
      409: { description: 'The customer is not active, past due or suspended', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      const handle = temporal.workflow.getHandle(customerWorkflowId(brand.id, params.id));
      try {
        const result = await handle.executeUpdate(updatePaymentMethodUpdate, { args: [{ paymentMethod: body.paymentMethod }] });
        const state = await readCustomer(brand.id, params.id);
        return { status: 200, body: { ...result, balance: toMoneyJson({ minor: BigInt(state.balanceMinor), currency: state.subscription?.currency ?? brand.currency }) } };
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw notFound(`customer "${params.id}"`);
        throw activationError(err) ?? err;
      }
    },
  });

  api.route({
    method: 'get',
    path: '/v1/customers/:id',
    summary: 'A customer: stage, plan and version, entitlements, current period, balance, dunning state, plan changes, cancellation, open disputes',
    tag: 'customers',
    params: IdParams,
    responses: {
      200: { description: 'The customer', schema: CustomerSchema },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => ({ status: 200, body: customerView(await readCustomer(brand.id, params.id), brand) }),
  });
}
