/** /v1/customers: start (idempotently) and read customer workflows. */
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { CUSTOMER_ID, customerWorkflowId } from '../domain/ids';
import { customerWorkflow } from '../workflows/customer';
import { CustomerState, getCustomerQuery, SA } from '../workflows/shared';
import { ApiError, notFound } from './errors';
import { Api, ErrorSchema, z } from './route';

export interface CustomerRoutesDeps {
  temporal: Client;
  taskQueue: string;
  /** How long a query may take before the API answers 503 (no worker, server down). */
  queryTimeoutMs?: number;
}

const CustomerId = z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit');

export const CreateCustomerBody = z
  .strictObject({
    id: CustomerId.openapi({ example: 'cus_42' }),
    email: z.email().max(254).openapi({ example: 'ada@example.com' }),
    name: z.string().trim().min(1).max(200).optional().openapi({ example: 'Ada Lovelace' }),
  })
  .openapi('CreateCustomer');

const Period = z.object({ number: z.number().int(), start: z.string(), end: z.string() });

export const CustomerSchema = z
  .object({
    id: z.string(),
    brand: z.string(),
    email: z.string(),
    name: z.string().nullable(),
    stage: z.enum(['lead', 'active', 'past_due', 'suspended', 'cancelled', 'lead_expired']),
    plan: z.null(),
    billingPeriod: z.string(),
    currentPeriod: Period,
    dunningState: z.string(),
    signedUpAt: z.string(),
  })
  .openapi('Customer');

const IdParams = z.strictObject({ id: CustomerId });

export function customerView(s: CustomerState) {
  return {
    id: s.customerId,
    brand: s.brandId,
    email: s.email,
    name: s.name,
    stage: s.stage,
    plan: s.plan,
    billingPeriod: s.billingPeriod,
    currentPeriod: s.currentPeriod,
    dunningState: s.dunningState,
    signedUpAt: s.signedUpAt,
  };
}

export function registerCustomerRoutes(api: Api, deps: CustomerRoutesDeps): void {
  const { temporal, taskQueue } = deps;
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

  api.route({
    method: 'post',
    path: '/v1/customers',
    summary: 'Sign up a customer directly (idempotent by id)',
    tag: 'customers',
    body: CreateCustomerBody,
    responses: {
      201: { description: 'Customer created', schema: CustomerSchema },
      202: { description: 'Customer started; no worker has picked it up yet. Poll the Location.' },
      200: { description: 'The customer already existed with the same details', schema: CustomerSchema },
      409: { description: 'A customer with this id exists with different details', schema: ErrorSchema },
    },
    handler: async ({ body, brand }) => {
      const workflowId = customerWorkflowId(brand.id, body.id);
      const location = `/v1/customers/${encodeURIComponent(body.id)}`;
      try {
        await temporal.workflow.start(customerWorkflow, {
          workflowId,
          taskQueue,
          args: [{ brandId: brand.id, customerId: body.id, email: body.email, name: body.name }],
          // A customer id is never reused, even after the customer's workflow has ended.
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          workflowIdConflictPolicy: 'FAIL',
          typedSearchAttributes: [
            { key: SA.customerId, value: body.id },
            { key: SA.brandId, value: brand.id },
            { key: SA.stage, value: 'active' },
          ],
        });
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        const existing = await readCustomer(brand.id, body.id);
        const conflicts = (['email', 'name'] as const).filter(
          (f) => body[f] !== undefined && body[f] !== (f === 'name' ? existing.name : existing.email),
        );
        if (conflicts.length > 0) {
          throw new ApiError(
            409,
            'CUSTOMER_EXISTS',
            `customer "${body.id}" already exists with a different ${conflicts.join(' and ')}`,
            conflicts.map((f) => ({ field: `body.${f}`, message: 'differs from the existing customer' })),
          );
        }
        return { status: 200, body: customerView(existing), headers: { Location: location } };
      }
      try {
        const state = await readCustomer(brand.id, body.id);
        return { status: 201, body: customerView(state), headers: { Location: location } };
      } catch (err) {
        // Started durably but no worker answered yet: the customer exists and will catch up.
        if (err instanceof ApiError && err.status === 503) {
          return { status: 202, body: { id: body.id, brand: brand.id, status: 'starting' }, headers: { Location: location } };
        }
        throw err;
      }
    },
  });

  api.route({
    method: 'get',
    path: '/v1/customers/:id',
    summary: 'A customer: stage, plan, current period, dunning state',
    tag: 'customers',
    params: IdParams,
    responses: {
      200: { description: 'The customer', schema: CustomerSchema },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => ({ status: 200, body: customerView(await readCustomer(brand.id, params.id)) }),
  });
}
