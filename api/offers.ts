/** /v1/offers/preview: what the offer engine would offer a buyer with given attributes. */
import { loadOfferInputs } from '../data/offers';
import { PLAN_CODE } from '../domain/catalog';
import { Buyer, chooseOffer, Offer } from '../domain/offers';
import { money, toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { Api, z, MoneySchema } from './route';

export interface OfferRoutesDeps {
  db: Db;
}

const Attribute = z.string().min(1, 'must not be empty; leave the parameter out instead').max(64);

export const OfferPreviewQuery = z
  .strictObject({
    segment: Attribute.optional().openapi({ example: 'startup' }),
    country: z.string().regex(/^[A-Z]{2}$/, 'two uppercase letters (ISO 3166-1 alpha-2) such as "DE"').optional().openapi({ example: 'DE' }),
    source: Attribute.optional().openapi({ example: 'partner' }),
    campaign: Attribute.optional().openapi({ example: 'spring-launch' }),
    volume: z.string().regex(/^\d{1,15}$/, 'a non-negative integer such as "250"').optional().openapi({ example: '250' }),
    plan: z.string().regex(PLAN_CODE, 'a plan code: lowercase letters, digits, "_" and "-"').optional().openapi({ example: 'pro' }),
  })
  .openapi('OfferPreviewQuery');


export const OfferPreviewSchema = z
  .object({
    buyer: z.object({
      segment: z.string().optional(),
      country: z.string().optional(),
      source: z.string().optional(),
      campaign: z.string().optional(),
      volume: z.number().int().optional(),
    }),
    offer: z
      .object({
        rule: z.string().nullable(),
        plan: z.object({ code: z.string(), version: z.number().int(), name: z.string() }),
        listPrice: MoneySchema,
        firstPeriodPrice: MoneySchema,
        discountPercent: z.number(),
        discountPeriods: z.number().int().nullable(),
        expectedMargin: MoneySchema,
        reason: z.string(),
      })
      .nullable(),
    reason: z.string(),
    horizonPeriods: z.number().int(),
    considered: z.array(
      z.object({
        rule: z.string().nullable(),
        plan: z.string(),
        eligible: z.boolean(),
        reason: z.string(),
        expectedMargin: MoneySchema.optional(),
      }),
    ),
  })
  .openapi('OfferPreview');

function offerView(o: Offer) {
  return {
    rule: o.rule,
    plan: o.plan,
    listPrice: toMoneyJson(money(o.listPriceMinor, o.currency)),
    firstPeriodPrice: toMoneyJson(money(o.firstPeriodPriceMinor, o.currency)),
    discountPercent: o.discountPercent,
    discountPeriods: o.discountPeriods,
    expectedMargin: toMoneyJson(money(o.expectedMarginMinor, o.currency)),
    reason: o.reason,
  };
}

export function registerOfferRoutes(api: Api, deps: OfferRoutesDeps): void {
  const { db } = deps;

  api.route({
    method: 'get',
    path: '/v1/offers/preview',
    summary: 'What the offer engine would offer a buyer: the most profitable matching rule, and every rule it weighed',
    tag: 'offers',
    query: OfferPreviewQuery,
    responses: {
      200: { description: 'The offer (null when none applies), why, and every rule considered', schema: OfferPreviewSchema },
    },
    handler: async ({ query, brand }) => {
      const buyer: Buyer = {
        ...(query.segment !== undefined ? { segment: query.segment } : {}),
        ...(query.country !== undefined ? { country: query.country } : {}),
        ...(query.source !== undefined ? { source: query.source } : {}),
        ...(query.campaign !== undefined ? { campaign: query.campaign } : {}),
        ...(query.volume !== undefined ? { volume: Number(query.volume) } : {}),
      };
      const inputs = await loadOfferInputs(db, brand.id);
      const currencyOf = new Map(inputs.plans.map((p) => [p.code, p.currency]));
      const decision = chooseOffer({ ...inputs, buyer, ...(query.plan !== undefined ? { requestedPlan: query.plan } : {}) });
      return {
        status: 200,
        body: {
          buyer,
          offer: decision.offer ? offerView(decision.offer) : null,
          reason: decision.reason,
          horizonPeriods: inputs.horizonPeriods,
          considered: decision.considered.map(({ expectedMarginMinor, ...c }) => {
            const currency = currencyOf.get(c.plan);
            return expectedMarginMinor !== undefined && currency ? { ...c, expectedMargin: toMoneyJson(money(expectedMarginMinor, currency)) } : c;
          }),
        },
      };
    },
  });
}
