/** /v1/plans: the brand's versioned catalog. A change is a new version; the same plan again is a no-op. */
import { createPlanVersion, latestPlans, planVersions } from '../data/plans';
import { Entitlements, Plan, PLAN_CODE, PlanInput, PlanInputError, UsageComponent } from '../domain/catalog';
import { money, toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { ApiError, invalidFields } from './errors';
import { Api, ErrorSchema, z, MoneySchema } from './route';

export interface PlanRoutesDeps {
  db: Db;
}


// Domain schemas are built before zod is extended for OpenAPI, so they carry zod's own `.meta()`.
export const CreatePlanBody = PlanInput.extend({
  code: PlanInput.shape.code.meta({ example: 'pro' }),
  name: PlanInput.shape.name.meta({ example: 'Pro' }),
  recurringFee: PlanInput.shape.recurringFee.meta({ description: "Per billing period, in the brand's currency", example: '29.00' }),
  costToServe: PlanInput.shape.costToServe.meta({ description: 'What one period costs to serve; the offer engine maximises fee − cost', example: '4.00' }),
  billingPeriod: PlanInput.shape.billingPeriod.meta({
    description: 'ISO-8601 duration; at least PT1M for sandbox brands and P1D for live brands',
    example: 'P1M',
  }),
}).openapi('CreatePlan');

export const PlanSchema = z
  .object({
    code: z.string(),
    version: z.number().int(),
    name: z.string(),
    recurringFee: MoneySchema,
    costToServe: MoneySchema,
    billingPeriod: z.string(),
    entitlements: Entitlements,
    usage: z.array(UsageComponent),
    createdAt: z.string(),
  })
  .openapi('Plan');

const CodeParams = z.strictObject({ code: z.string().regex(PLAN_CODE, 'a plan code: lowercase letters, digits, "_" and "-"') });

export function planView(p: Plan) {
  return {
    code: p.code,
    version: p.version,
    name: p.name,
    recurringFee: toMoneyJson(money(p.recurringFeeMinor, p.currency)),
    costToServe: toMoneyJson(money(p.costToServeMinor, p.currency)),
    billingPeriod: p.billingPeriod,
    entitlements: p.entitlements,
    usage: p.usageComponents,
    createdAt: p.createdAt,
  };
}

export function registerPlanRoutes(api: Api, deps: PlanRoutesDeps): void {
  const { db } = deps;

  api.route({
    method: 'get',
    path: '/v1/plans',
    summary: 'The latest version of every plan of the brand',
    tag: 'plans',
    responses: { 200: { description: 'The catalog, ordered by code', schema: z.object({ data: z.array(PlanSchema) }) } },
    handler: async ({ brand }) => ({ status: 200, body: { data: (await latestPlans(db, brand.id)).map(planView) } }),
  });

  api.route({
    method: 'get',
    path: '/v1/plans/:code',
    summary: 'Every version of one plan, newest first',
    tag: 'plans',
    params: CodeParams,
    responses: {
      200: { description: 'The versions of the plan', schema: z.object({ data: z.array(PlanSchema) }) },
      404: { description: 'The brand has no plan with this code', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const versions = await planVersions(db, brand.id, params.code);
      if (versions.length === 0) {
        throw new ApiError(404, 'NOT_FOUND', `plan "${params.code}" not found`, [{ field: 'params.code', message: 'no plan with this code' }]);
      }
      return { status: 200, body: { data: versions.reverse().map(planView) } };
    },
  });

  api.route({
    method: 'post',
    path: '/v1/plans',
    summary: 'Add a version of a plan (the same plan again returns the latest version unchanged)',
    tag: 'plans',
    body: CreatePlanBody,
    responses: {
      201: { description: 'A new version was created', schema: PlanSchema },
      200: { description: 'Identical to the latest version, which is returned; nothing was created', schema: PlanSchema },
    },
    handler: async ({ body, brand }) => {
      try {
        const { plan, created } = await createPlanVersion(db, brand, body);
        return { status: created ? 201 : 200, body: planView(plan), headers: { Location: `/v1/plans/${plan.code}` } };
      } catch (err) {
        if (err instanceof PlanInputError) throw invalidFields(err.issues.map((i) => ({ field: `body.${i.field}`, message: i.message })));
        throw err;
      }
    },
  });
}
