/**
 * Customer communication for operators and client apps: every message sent (or held back) to a
 * customer, the customer's preferences (opt-outs, time zone, channel), and the brand's own
 * versions of message templates, which win over the built-in library.
 */
import {
  CommunicationPreferences,
  findCustomer,
  getBrandTemplate,
  getPreferences,
  listBrandTemplates,
  listCustomerMessages,
  MessageRecord,
  putBrandTemplate,
  putPreferences,
} from '../data/communications';
import { getPolicy } from '../data/policies';
import { isValidTimeZone, MESSAGE_CATEGORIES, mayOptOut } from '../domain/communication';
import { CUSTOMER_ID } from '../domain/ids';
import type { Db } from '../infra/db';
import { BUILT_IN_TEMPLATES, TEMPLATE_NAME, templateProblems } from '../presentment/templates';
import type { MessageCategory } from '../workflows/shared';
import type { Brand } from './auth';
import { FieldProblem, invalidFields, notFound } from './errors';
import { Api, ErrorSchema, z } from './route';

export interface CommunicationRoutesDeps {
  db: Db;
}

const Category = z.enum(MESSAGE_CATEGORIES as [MessageCategory, ...MessageCategory[]]);
const Channel = z.enum(['email', 'webhook']);
const CustomerParams = z.strictObject({
  id: z.string().regex(CUSTOMER_ID, 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit'),
});

const MessageSchema = z
  .object({
    id: z.string(),
    dedupeKey: z.string().openapi({ description: 'The event the message is about; the same key is never sent twice' }),
    template: z.string(),
    category: Category,
    channel: Channel,
    status: z.enum(['queued', 'waiting_quiet_hours', 'sending', 'sent', 'suppressed', 'failed']),
    reason: z.string().nullable().openapi({ description: 'Why it was not sent, e.g. "opted_out:marketing"' }),
    error: z.string().nullable().openapi({ description: 'The last delivery error (while retrying, or why it failed)' }),
    attempts: z.number().int(),
    recipient: z.string(),
    subject: z.string().nullable().openapi({ description: 'As sent' }),
    messageId: z.string().nullable().openapi({ description: 'Message-ID header (email) or delivery id (webhook), the same on every retry' }),
    workflowId: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    scheduledFor: z.string().nullable().openapi({ description: 'When quiet hours end, for a message held back by them' }),
    sentAt: z.string().nullable(),
    updatedAt: z.string(),
  })
  .openapi('CustomerMessage');

const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).optional().openapi({ description: 'At most this many messages (default 50)' }),
  cursor: z.string().regex(/^\d{1,19}$/, 'a nextCursor from a previous page').optional(),
});

const PreferencesSchema = z
  .object({
    optedOut: z.array(Category),
    timeZone: z.string().nullable().openapi({ description: "IANA zone for quiet hours; null uses the brand policy's default" }),
    effectiveTimeZone: z.string(),
    channel: Channel,
    webhookUrl: z.string().nullable(),
    webhookSecret: z.string().nullable().openapi({ description: 'Verifies deliveries: X-Closeloop-Signature is sha256=<hex HMAC-SHA256 of the raw body>' }),
    optOutAllowed: z.array(Category).openapi({ description: 'What the brand lets customers opt out of (never transactional)' }),
    updatedAt: z.string().nullable(),
  })
  .openapi('CommunicationPreferences');

const PreferencesBody = z
  .strictObject({
    optedOut: z.array(Category).max(MESSAGE_CATEGORIES.length).default([]),
    timeZone: z.string().max(64).nullable().default(null).openapi({ example: 'Europe/Berlin' }),
    channel: Channel.default('email'),
    webhookUrl: z.url({ protocol: /^https?$/, error: 'an http or https URL' }).max(2048).nullable().default(null),
  })
  .openapi('CommunicationPreferencesChange');

const TemplateParams = z.strictObject({
  name: z.string().regex(TEMPLATE_NAME, 'lowercase letters, digits, ".", "_" and "-", up to 64').openapi({ example: 'invoice-ready' }),
});
const TemplateBody = z
  .strictObject({
    subject: z.string().trim().min(1).max(300),
    text: z.string().min(1).max(100_000),
    html: z.string().min(1).max(500_000),
  })
  .openapi('MessageTemplateChange', {
    description: '{{name}} inserts a value (HTML-escaped in the html part); {{#name}}…{{/name}} keeps its content only when the value is present, {{^name}}…{{/name}} only when it is absent',
  });
const TemplateSchema = z
  .object({
    name: z.string(),
    origin: z.enum(['brand', 'library']),
    version: z.number().int().openapi({ description: '0 for the built-in library version' }),
    subject: z.string(),
    text: z.string(),
    html: z.string(),
    updatedAt: z.string().nullable(),
  })
  .openapi('MessageTemplate');

function messageView(m: MessageRecord) {
  const { brandId: _brandId, customerId: _customerId, ...rest } = m;
  return rest;
}

function preferencesView(p: CommunicationPreferences, policy: { defaultTimeZone: string; optOutAllowed: string[] }) {
  return {
    optedOut: p.optedOut,
    timeZone: p.timeZone,
    effectiveTimeZone: [p.timeZone, policy.defaultTimeZone].find((zone): zone is string => !!zone && isValidTimeZone(zone)) ?? 'UTC',
    channel: p.channel,
    webhookUrl: p.webhookUrl,
    webhookSecret: p.webhookSecret,
    optOutAllowed: policy.optOutAllowed,
    updatedAt: p.updatedAt,
  };
}

export function registerCommunicationRoutes(api: Api, deps: CommunicationRoutesDeps): void {
  const { db } = deps;

  async function requireCustomer(brand: Brand, customerId: string): Promise<void> {
    if (!(await findCustomer(db, brand.id, customerId))) throw notFound(`customer "${customerId}"`);
  }

  api.route({
    method: 'get',
    path: '/v1/customers/:id/communications',
    summary: 'Every message sent to (or held back from) a customer, newest first',
    tag: 'communications',
    params: CustomerParams,
    query: ListQuery,
    responses: {
      200: { description: 'A page of messages; pass nextCursor as cursor for the next', schema: z.object({ data: z.array(MessageSchema), nextCursor: z.string().nullable() }) },
      404: { description: 'No such customer in this brand', schema: ErrorSchema },
    },
    handler: async ({ params, query, brand }) => {
      await requireCustomer(brand, params.id);
      const limit = query.limit ?? 50;
      const rows = await listCustomerMessages(db, brand.id, params.id, { limit: limit + 1, before: query.cursor });
      const page = rows.slice(0, limit);
      return { status: 200, body: { data: page.map(messageView), nextCursor: rows.length > limit ? page[page.length - 1]!.id : null } };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/customers/:id/communication-preferences',
    summary: "A customer's opt-outs, time zone and channel",
    tag: 'communications',
    params: CustomerParams,
    responses: {
      200: { description: 'The preferences (defaults until set)', schema: PreferencesSchema },
      404: { description: 'No such customer in this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      await requireCustomer(brand, params.id);
      const [prefs, policy] = await Promise.all([getPreferences(db, brand.id, params.id), getPolicy(db, brand.id, 'communication')]);
      return { status: 200, body: preferencesView(prefs, policy.document) };
    },
  });

  api.route({
    method: 'put',
    path: '/v1/customers/:id/communication-preferences',
    summary: "Replace a customer's preferences; transactional messages cannot be opted out of",
    tag: 'communications',
    params: CustomerParams,
    body: PreferencesBody,
    responses: {
      200: { description: 'The stored preferences; the webhook secret is made with the first webhook URL', schema: PreferencesSchema },
      404: { description: 'No such customer in this brand', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      await requireCustomer(brand, params.id);
      const policy = (await getPolicy(db, brand.id, 'communication')).document;
      const problems: FieldProblem[] = [];
      body.optedOut.forEach((category, i) => {
        if (category === 'transactional') problems.push({ field: `body.optedOut.${i}`, message: 'transactional messages cannot be opted out of' });
        else if (!mayOptOut(category, policy.optOutAllowed)) problems.push({ field: `body.optedOut.${i}`, message: `this brand does not allow opting out of "${category}"` });
      });
      if (body.timeZone !== null && !isValidTimeZone(body.timeZone)) problems.push({ field: 'body.timeZone', message: 'an IANA time zone such as "Europe/Berlin"' });
      if (body.channel === 'webhook' && body.webhookUrl === null) problems.push({ field: 'body.webhookUrl', message: 'required when channel is "webhook"' });
      if (body.webhookUrl !== null && brand.mode === 'live' && !body.webhookUrl.startsWith('https:')) {
        problems.push({ field: 'body.webhookUrl', message: 'must be https for a live brand' });
      }
      if (problems.length > 0) throw invalidFields(problems);
      const stored = await putPreferences(db, brand.id, params.id, body);
      return { status: 200, body: preferencesView(stored, policy) };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/templates',
    summary: "Every template the brand's messages use: the library's and the brand's own, by name",
    tag: 'communications',
    responses: {
      200: {
        description: 'One entry per name; origin says whose version messages use',
        schema: z.object({ data: z.array(z.object({ name: z.string(), origin: z.enum(['brand', 'library']), version: z.number().int(), subject: z.string() })) }),
      },
    },
    handler: async ({ brand }) => {
      const own = new Map((await listBrandTemplates(db, brand.id)).map((t) => [t.template, t]));
      const names = [...new Set([...BUILT_IN_TEMPLATES.keys(), ...own.keys()])].sort();
      const data = names.map((name) => {
        const mine = own.get(name);
        return mine ? { name, origin: 'brand' as const, version: mine.version, subject: mine.subject } : { name, origin: 'library' as const, version: 0, subject: BUILT_IN_TEMPLATES.get(name)!.subject };
      });
      return { status: 200, body: { data } };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/templates/:name',
    summary: "A message template as the brand's messages use it: the brand's own version, else the library's",
    tag: 'communications',
    params: TemplateParams,
    responses: {
      200: { description: 'The template', schema: TemplateSchema },
      404: { description: 'Neither the brand nor the library has this template (messages then use a generic text)', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const own = await getBrandTemplate(db, brand.id, params.name);
      if (own) return { status: 200, body: { name: params.name, origin: 'brand', version: own.version, subject: own.subject, text: own.text, html: own.html, updatedAt: own.updatedAt } };
      const builtIn = BUILT_IN_TEMPLATES.get(params.name);
      if (!builtIn) throw notFound(`template "${params.name}"`);
      return { status: 200, body: { name: params.name, origin: 'library', version: 0, ...builtIn, updatedAt: null } };
    },
  });

  api.route({
    method: 'put',
    path: '/v1/templates/:name',
    summary: "Set the brand's own version of a message template; it wins over the library",
    tag: 'communications',
    params: TemplateParams,
    body: TemplateBody,
    responses: { 200: { description: 'The stored template; a changed one gets the next version', schema: TemplateSchema } },
    handler: async ({ params, body, brand }) => {
      const problems = templateProblems(body);
      if (problems.length > 0) throw invalidFields(problems.map((p) => ({ field: `body.${p.part}`, message: p.message })));
      const stored = await putBrandTemplate(db, brand.id, params.name, body);
      return { status: 200, body: { name: params.name, origin: 'brand', version: stored.version, subject: stored.subject, text: stored.text, html: stored.html, updatedAt: stored.updatedAt } };
    },
  });
}
