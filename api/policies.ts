/**
 * /v1/policies/:kind: the brand's offer rules, acquisition, dunning, dispute and communication
 * policies. A document is checked in full (schema, brand mode, catalog) before anything is stored.
 */
import { planCodes } from '../data/plans';
import { getPolicy, putPolicy, StoredPolicy } from '../data/policies';
import { POLICY_KINDS, POLICY_SCHEMAS, PolicyKind, policyProblems } from '../domain/policies';
import type { Db } from '../infra/db';
import { ApiError, invalidFields, validationError } from './errors';
import { Api, ErrorSchema, z } from './route';

export interface PolicyRoutesDeps {
  db: Db;
}

const COMPONENT_NAMES: Record<PolicyKind, string> = {
  offers: 'OffersPolicy',
  acquisition: 'AcquisitionPolicy',
  dunning: 'DunningPolicy',
  disputes: 'DisputesPolicy',
  communication: 'CommunicationPolicy',
};

// Domain schemas are built before zod is extended for OpenAPI, so they carry zod's own `.meta()`.
const DocumentSchema = z.union(POLICY_KINDS.map((k) => POLICY_SCHEMAS[k].meta({ id: COMPONENT_NAMES[k] })));

export const PolicySchema = z
  .object({
    kind: z.enum(POLICY_KINDS),
    version: z.number().int().openapi({ description: '0 while the default applies' }),
    custom: z.boolean().openapi({ description: 'false while the brand has not set this kind and the default applies' }),
    updatedAt: z.string().nullable(),
    document: DocumentSchema,
  })
  .openapi('Policy');

const KindParams = z.strictObject({
  kind: z.string().max(64).openapi({ description: `one of ${POLICY_KINDS.join(', ')}`, example: 'offers' }),
});

// The document's schema depends on :kind, so the body is checked against it in the handler.
const PutPolicyBody = z.looseObject({}).openapi('PolicyDocument', {
  description: `The whole document for :kind: ${POLICY_KINDS.map((k) => `${k} → ${COMPONENT_NAMES[k]}`).join(', ')}`,
});

function policyView(p: StoredPolicy<PolicyKind>) {
  return { kind: p.kind, version: p.version, custom: p.custom, updatedAt: p.updatedAt, document: p.document };
}

function policyKind(kind: string): PolicyKind {
  if ((POLICY_KINDS as string[]).includes(kind)) return kind as PolicyKind;
  throw new ApiError(404, 'NOT_FOUND', `policy kind "${kind}" not found`, [
    { field: 'params.kind', message: `must be one of ${POLICY_KINDS.join(', ')}` },
  ]);
}

export function registerPolicyRoutes(api: Api, deps: PolicyRoutesDeps): void {
  const { db } = deps;

  api.route({
    method: 'get',
    path: '/v1/policies',
    summary: 'Every policy of the brand, stored or default',
    tag: 'policies',
    responses: { 200: { description: 'One entry per kind', schema: z.object({ data: z.array(PolicySchema) }) } },
    handler: async ({ brand }) => {
      const policies = await Promise.all(POLICY_KINDS.map((kind) => getPolicy(db, brand.id, kind)));
      return { status: 200, body: { data: policies.map(policyView) } };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/policies/:kind',
    summary: "One of the brand's policies; the default until the brand sets its own",
    tag: 'policies',
    params: KindParams,
    responses: {
      200: { description: 'The policy', schema: PolicySchema },
      404: { description: 'No such policy kind', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => ({ status: 200, body: policyView(await getPolicy(db, brand.id, policyKind(params.kind))) }),
  });

  api.route({
    method: 'put',
    path: '/v1/policies/:kind',
    summary: 'Replace a policy; a changed document gets the next version, the same document changes nothing',
    tag: 'policies',
    params: KindParams,
    body: PutPolicyBody,
    responses: {
      200: { description: 'The stored policy', schema: PolicySchema },
      404: { description: 'No such policy kind', schema: ErrorSchema },
    },
    handler: async ({ params, body, brand }) => {
      const kind = policyKind(params.kind);
      const parsed = POLICY_SCHEMAS[kind].safeParse(body);
      if (!parsed.success) throw validationError('body', parsed.error);
      const codes = kind === 'offers' ? await planCodes(db, brand.id) : new Set<string>();
      const problems = policyProblems(kind, parsed.data, { mode: brand.mode, planCodes: codes });
      if (problems.length > 0) throw invalidFields(problems.map((p) => ({ field: `body.${p.field}`, message: p.message })));
      const { policy } = await putPolicy(db, brand.id, kind, parsed.data);
      return { status: 200, body: policyView(policy) };
    },
  });
}
