/**
 * /v1/leads: capture a lead with its attribution (idempotently) and start its customer
 * workflow, which nurtures it until it converts or expires.
 */
import { ServiceError, WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { captureLead, discardUnstartedLead, getLead, Lead, LeadConflictError, LeadField } from '../data/leads';
import { CUSTOMER_ID, customerWorkflowId } from '../domain/ids';
import type { Db } from '../infra/db';
import { customerWorkflow } from '../workflows/customer';
import { SA } from '../workflows/shared';
import { ApiError, notFound } from './errors';
import { flatRecord } from './schemas';
import { Api, ErrorSchema, z } from './route';

export interface LeadRoutesDeps {
  temporal: Client;
  db: Db;
  taskQueue: string;
}

/** Source and campaign names: lower-case slugs, so the funnel never splits "Google" from "google". */
export const ATTRIBUTION_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const ATTRIBUTE_KEY = /^[a-z0-9_]{1,64}$/;
export const MAX_ATTRIBUTES = 50;

const AttributionName = z.string().regex(ATTRIBUTION_NAME, 'a lower-case slug: letters, digits, "_", "." or "-", starting with a letter or digit (max 64)');

const LeadAttributes = flatRecord({
  key: ATTRIBUTE_KEY,
  keyMessage: 'attribute keys are 1-64 lower-case letters, digits or "_"',
  maxString: 1000,
  valueMessage: 'must be a string, number or boolean',
  maxKeys: MAX_ATTRIBUTES,
  what: 'attributes',
})
  .openapi('LeadAttributes', { description: 'A flat object of string, number or boolean values', example: { company_size: 40, trial: true } });

export const CaptureLeadBody = z
  .strictObject({
    externalId: z
      .string()
      .regex(/^[^\s\p{C}]{1,255}$/u, '1-255 characters, no spaces or control characters')
      .optional()
      .openapi({ description: "Your own id for the lead: a repeat with the same one returns the same lead", example: 'crm-00Q5e' }),
    email: z.email().max(254).openapi({ example: 'ada@example.com' }),
    name: z.string().trim().min(1).max(200).optional().openapi({ example: 'Ada Lovelace' }),
    source: AttributionName.openapi({ example: 'google' }),
    campaign: AttributionName.optional().openapi({ example: 'spring-2026' }),
    attributes: LeadAttributes.optional(),
  })
  .openapi('CaptureLead');

export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1, 'must not be empty')
    .max(255, 'at most 255 characters')
    .optional()
    .openapi({ description: 'Without an externalId, a repeat with the same key returns the same lead' }),
});

export const LeadSchema = z
  .object({
    id: z.string().openapi({ description: 'Also the customer id: GET /v1/customers/{id}' }),
    externalId: z.string().nullable(),
    email: z.string(),
    name: z.string().nullable(),
    source: z.string(),
    campaign: z.string().nullable(),
    attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    status: z.enum(['open', 'converted', 'expired']),
    createdAt: z.string(),
    convertedAt: z.string().nullable(),
    expiredAt: z.string().nullable(),
  })
  .openapi('Lead');

const LeadIdParams = z.strictObject({ id: z.string().regex(CUSTOMER_ID, 'a lead id such as "lead_3f2a…"') });

function leadView(l: Lead) {
  return {
    id: l.id,
    externalId: l.externalId,
    email: l.email,
    name: l.name,
    source: l.source,
    campaign: l.campaign,
    attributes: l.attributes,
    status: l.status,
    createdAt: l.createdAt,
    convertedAt: l.convertedAt,
    expiredAt: l.expiredAt,
  };
}

const CONFLICT_FIELD: Record<LeadField, string> = {
  externalId: 'body.externalId',
  idempotencyKey: 'header.idempotency-key',
  email: 'body.email',
  name: 'body.name',
  source: 'body.source',
  campaign: 'body.campaign',
  attributes: 'body.attributes',
};

function conflict(err: LeadConflictError): ApiError {
  const reused = err.fields.length === 1 && err.fields[0] === 'idempotencyKey';
  return new ApiError(
    409,
    'LEAD_EXISTS',
    reused ? 'this Idempotency-Key was already used for a different lead' : err.message,
    err.fields.map((f) => ({
      field: CONFLICT_FIELD[f],
      message: f === 'idempotencyKey' ? 'already used for a different lead' : 'differs from the existing lead',
    })),
  );
}

export function registerLeadRoutes(api: Api, deps: LeadRoutesDeps): void {
  const { temporal, db, taskQueue } = deps;

  /** Idempotent: a lead whose workflow already started (or has ended) is left as it is. */
  async function startCustomerWorkflow(brandId: string, lead: Lead): Promise<void> {
    try {
      await temporal.workflow.start(customerWorkflow, {
        workflowId: customerWorkflowId(brandId, lead.id),
        taskQueue,
        args: [
          {
            brandId,
            customerId: lead.id,
            email: lead.email,
            name: lead.name ?? undefined,
            lead: { source: lead.source, campaign: lead.campaign ?? '', attributes: lead.attributes },
          },
        ],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        workflowIdConflictPolicy: 'FAIL',
        typedSearchAttributes: [
          { key: SA.customerId, value: lead.id },
          { key: SA.brandId, value: brandId },
          { key: SA.stage, value: 'lead' },
        ],
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      throw err;
    }
  }

  api.route({
    method: 'post',
    path: '/v1/leads',
    summary: 'Capture a lead with its source and campaign and start its customer workflow; idempotent by externalId or Idempotency-Key',
    tag: 'leads',
    body: CaptureLeadBody,
    headers: IdempotencyHeaders,
    responses: {
      201: { description: 'Lead captured; its customer workflow started (stage "lead")', schema: LeadSchema },
      200: { description: 'The same externalId or Idempotency-Key was captured before: the existing lead', schema: LeadSchema },
      409: { description: 'The externalId or Idempotency-Key belongs to a lead with different details', schema: ErrorSchema },
      503: { description: 'Temporal is unreachable; retry with the same externalId or Idempotency-Key', schema: ErrorSchema },
    },
    handler: async ({ body, headers, brand }) => {
      const idempotencyKey = headers['idempotency-key'];
      let captured: Awaited<ReturnType<typeof captureLead>>;
      try {
        captured = await captureLead(db, brand.id, { ...body, idempotencyKey });
      } catch (err) {
        throw err instanceof LeadConflictError ? conflict(err) : err;
      }
      const { lead, created } = captured;
      try {
        // A repeat starts it too: the first request may have stored the lead and then failed here.
        await startCustomerWorkflow(brand.id, lead);
      } catch (err) {
        if (created) await discardUnstartedLead(db, brand.id, lead.id);
        if (err instanceof ServiceError) {
          throw new ApiError(503, 'UNAVAILABLE', 'could not start the lead’s customer workflow; retry with the same externalId or Idempotency-Key');
        }
        throw err;
      }
      return {
        status: created ? 201 : 200,
        body: leadView(lead),
        headers: { Location: `/v1/customers/${encodeURIComponent(lead.id)}` },
      };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/leads/:id',
    summary: 'A lead: its attribution and outcome (open, converted or expired)',
    tag: 'leads',
    params: LeadIdParams,
    responses: {
      200: { description: 'The lead', schema: LeadSchema },
      404: { description: 'No such lead for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const lead = await getLead(db, brand.id, params.id);
      if (!lead) throw notFound(`lead "${params.id}"`);
      return { status: 200, body: leadView(lead) };
    },
  });
}
