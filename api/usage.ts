/**
 * POST /v1/customers/:id/usage: metered usage in batches, written straight to PostgreSQL (never
 * through Temporal) and idempotent by event id. Only a crossed allowance threshold reaches the
 * customer workflow, as a signal.
 */
import type { Client } from '@temporalio/client';
import { KEY_NAME } from '../domain/catalog';
import { CUSTOMER_ID, customerWorkflowId } from '../domain/ids';
import {
  findUsageCustomer,
  MAX_EVENT_AGE_MS,
  MAX_EVENTS_PER_BATCH,
  MAX_FUTURE_SKEW_MS,
  MAX_PROPERTIES,
  parseQuantity,
  recordUsage,
  thresholdCrossings,
  timestampProblem,
  USAGE_ACCEPTING_STAGES,
  USAGE_EVENT_ID,
  type ThresholdCrossing,
  type UsageEventInput,
} from '../data/usage';
import type { Db } from '../infra/db';
import type { Logger } from '../infra/logger';
import { usageThresholdSignal, type UsageThresholdCrossed } from '../workflows/shared';
import { ApiError, fieldProblems, notFound, type FieldProblem } from './errors';
import { flatRecord } from './schemas';
import { Api, ErrorSchema, z } from './route';

export interface UsageRoutesDeps {
  temporal: Client;
  db: Db;
  logger: Logger;
}

const PROPERTY_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

const Properties = flatRecord({
  key: PROPERTY_KEY,
  keyMessage: 'property keys are 1-64 letters, digits, "_", "." or "-"',
  maxString: 500,
  valueMessage: 'must be a string (max 500), number or boolean: properties are flat',
  maxKeys: MAX_PROPERTIES,
  what: 'properties',
})
  .openapi({ description: `A flat object of at most ${MAX_PROPERTIES} string, number or boolean values`, example: { region: 'eu-west-1' } });

const Quantity = z
  .union([z.number(), z.string()], { error: 'must be a number or a decimal string such as "0.000125"' })
  .transform((value, ctx) => {
    const parsed = parseQuantity(value);
    if (!parsed.ok) {
      ctx.addIssue({ code: 'custom', message: parsed.message, input: value });
      return z.NEVER;
    }
    return parsed.value;
  })
  .openapi({
    description:
      'Non-negative, at most 6 decimals, below 1e15; stored exactly. Prefer a decimal string: a JSON number is accepted only when its shortest form has no exponent',
    example: '0.000125',
  });

export const UsageEvent = z
  .strictObject({
    id: z.string().regex(USAGE_EVENT_ID, '1-128 letters, digits, "_", ".", ":" or "-"').openapi({
      description: 'Your id for the event, unique per customer: a re-sent id is a duplicate, whatever its quantity (the first write wins)',
      example: 'req_01HZX3',
    }),
    metric: z.string().regex(KEY_NAME, 'a metric name: lowercase letters, digits, "_", "-", "."').openapi({
      description: "One of the metrics of the customer's plan version",
      example: 'api_calls',
    }),
    quantity: Quantity,
    timestamp: z.iso.datetime({ offset: true, error: 'an ISO-8601 timestamp with a zone, such as "2026-11-25T10:00:00Z"' }).openapi({
      description: `When the usage happened: at most ${MAX_FUTURE_SKEW_MS / 60_000} minutes ahead of the server clock and at most ${MAX_EVENT_AGE_MS / 86_400_000} days old`,
      example: '2026-11-25T10:00:00Z',
    }),
    properties: Properties.optional(),
  })
  .openapi('UsageEvent');

export const UsageBatchBody = z
  .strictObject({
    // Each event is checked in the handler, together with the checks that need the clock and the
    // customer's plan, so one answer names every bad field of every event.
    events: z
      .array(z.unknown())
      .min(1, 'at least one event')
      .max(MAX_EVENTS_PER_BATCH, `at most ${MAX_EVENTS_PER_BATCH} events per batch`)
      .openapi({ items: { $ref: '#/components/schemas/UsageEvent' } }),
  })
  .openapi('UsageBatch');

const Threshold = z.object({
  metric: z.string(),
  threshold: z.union([z.literal(80), z.literal(100)]).openapi({ description: 'Percent of the included allowance' }),
  quantity: z.string().openapi({ description: 'Unbilled total after the batch' }),
  included: z.string(),
  notified: z.boolean().openapi({ description: 'false when the customer workflow could not be signalled; the usage is recorded regardless' }),
});

export const UsageBatchResult = z
  .object({
    accepted: z.number().int().openapi({ description: 'Events stored by this request' }),
    duplicates: z.number().int().openapi({ description: 'Events whose id was already stored, or repeated earlier in the batch' }),
    thresholds: z.array(Threshold).openapi({ description: 'Allowance thresholds this batch crossed' }),
  })
  .openapi('UsageBatchResult');

const IdParams = z.strictObject({ id: z.string().regex(CUSTOMER_ID, 'a customer id') });

type ParsedEvent = z.infer<typeof UsageEvent>;

/**
 * Every event checked, every problem named by `body.events.<i>.<field>`. Shape problems make the
 * batch a 400; an event that is well formed but not acceptable (a metric the plan does not meter,
 * a timestamp outside the window) a 422.
 */
function checkEvents(raw: unknown[], metrics: ReadonlySet<string>, nowMs: number): { events: ParsedEvent[]; malformed: FieldProblem[]; unacceptable: FieldProblem[] } {
  const events: ParsedEvent[] = [];
  const malformed: FieldProblem[] = [];
  const unacceptable: FieldProblem[] = [];
  raw.forEach((value, i) => {
    const at = `body.events.${i}`;
    const parsed = UsageEvent.safeParse(value);
    const bad = new Set(parsed.success ? [] : parsed.error.issues.map((issue) => String(issue.path[0] ?? '')));
    if (!parsed.success) malformed.push(...fieldProblems(at, parsed.error));
    // The business checks still run on the fields that are well formed, so they are named too.
    const event = (value ?? {}) as Partial<Record<'metric' | 'timestamp', string>>;
    if (!bad.has('metric') && typeof event.metric === 'string' && !metrics.has(event.metric)) {
      unacceptable.push({ field: `${at}.metric`, message: `"${event.metric}" is not a metric of the customer's plan` });
    }
    if (!bad.has('timestamp') && typeof event.timestamp === 'string') {
      const problem = timestampProblem(Date.parse(event.timestamp), nowMs);
      if (problem) unacceptable.push({ field: `${at}.timestamp`, message: problem });
    }
    if (parsed.success) events.push(parsed.data);
  });
  return { events, malformed, unacceptable };
}

/** First occurrence of an id wins; later ones in the same batch count as duplicates. */
function firstOfEachId(events: ParsedEvent[]): UsageEventInput[] {
  const seen = new Set<string>();
  return events.filter((e) => {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
    return true;
  });
}

export function registerUsageRoutes(api: Api, deps: UsageRoutesDeps): void {
  const { temporal, db, logger } = deps;
  api.registry.register('UsageEvent', UsageEvent);

  /**
   * At least once, best effort: the events are already committed, so a failed signal is logged
   * and reported as `notified: false` instead of failing a batch that a retry could not repeat.
   */
  async function notify(brandId: string, customerId: string, crossings: ThresholdCrossing[]) {
    const handle = temporal.workflow.getHandle(customerWorkflowId(brandId, customerId));
    const at = new Date().toISOString();
    return Promise.all(
      crossings.map(async (c) => {
        const signal: UsageThresholdCrossed = { metric: c.metric, threshold: c.threshold, quantity: c.quantity, included: c.included, at };
        try {
          await handle.signal(usageThresholdSignal, signal);
          return { ...c, notified: true };
        } catch (err) {
          logger.warn({ err, brandId, customerId, crossing: signal }, 'could not signal a usage threshold crossing');
          return { ...c, notified: false };
        }
      }),
    );
  }

  api.route({
    method: 'post',
    path: '/v1/customers/:id/usage',
    summary: `Record a batch of up to ${MAX_EVENTS_PER_BATCH} metered usage events; idempotent by event id, all or nothing`,
    tag: 'usage',
    params: IdParams,
    body: UsageBatchBody,
    responses: {
      202: { description: 'Recorded; rated from the database when the period closes', schema: UsageBatchResult },
      404: { description: 'No such customer for this brand', schema: ErrorSchema },
      409: { description: 'CUSTOMER_INACTIVE: usage is accepted only from active and past_due customers (a suspended one’s is refused)', schema: ErrorSchema },
      422: { description: 'A metric the plan does not meter, or a timestamp outside the accepted window; nothing was recorded', schema: ErrorSchema },
      413: { description: 'The body is over the API’s 1 MiB limit: send fewer events (or shorter ids and properties) per request', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      const customer = await findUsageCustomer(db, brand.id, params.id);
      if (!customer) throw notFound(`customer "${params.id}"`);
      if (!USAGE_ACCEPTING_STAGES.has(customer.stage)) {
        throw new ApiError(409, 'CUSTOMER_INACTIVE', `customer "${params.id}" is ${customer.stage}; usage is accepted only while active or past_due`);
      }
      const components = customer.plan?.usageComponents ?? [];
      const { events, malformed, unacceptable } = checkEvents(body.events, new Set(components.map((c) => c.metric)), Date.now());
      if (malformed.length + unacceptable.length > 0) {
        const problems = [...malformed, ...unacceptable];
        const invalid = new Set(problems.map((p) => p.field.split('.')[2])).size;
        const message = `${invalid} of ${body.events.length} events are invalid; nothing was recorded`;
        throw malformed.length > 0
          ? new ApiError(400, 'VALIDATION_FAILED', message, problems)
          : new ApiError(422, 'USAGE_REJECTED', message, unacceptable);
      }

      const unique = firstOfEachId(events);
      const allowances = new Map(components.filter((c) => c.includedQuantity > 0).map((c) => [c.metric, c.includedQuantity]));
      const recorded = await recordUsage(db, {
        brandId: brand.id,
        customerId: params.id,
        events: unique,
        totalsFor: [...new Set(unique.map((e) => e.metric))].filter((m) => allowances.has(m)),
      });
      const crossings = recorded.metrics.flatMap((m) =>
        m.before !== undefined && m.after !== undefined
          ? thresholdCrossings({ metric: m.metric, included: allowances.get(m.metric) ?? 0, before: m.before, after: m.after })
          : [],
      );
      const thresholds = crossings.length > 0 ? await notify(brand.id, params.id, crossings) : [];
      return { status: 202, body: { accepted: recorded.accepted, duplicates: body.events.length - recorded.accepted, thresholds } };
    },
  });
}
