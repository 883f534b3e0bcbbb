/** /v1/tax-rates: the brand's tax table, read and replaced as a whole. */
import { listTaxRates, replaceTaxRates } from '../data/tax';
import { parseRate } from '../domain/invoice';
import type { Db } from '../infra/db';
import { Api, z } from './route';

export interface TaxRoutesDeps {
  db: Db;
}

const USED_BY_INVOICES =
  'Invoices currently apply only the default row ("*"); rows for single countries are stored and returned, and take effect once invoicing uses the customer\'s country.';

const TaxRateSchema = z
  .strictObject({
    country: z
      .string()
      .regex(/^(\*|[A-Z]{2})$/, 'an ISO 3166-1 alpha-2 country code such as "DE", or "*" for the default')
      .openapi({ example: 'DE' }),
    rate: z
      .string()
      .regex(/^(0|[1-9]\d{0,2})(\.\d{1,4})?$/, 'a percentage as a decimal string with at most 4 decimals, such as "19" or "7.25"')
      .refine((r) => {
        try {
          parseRate(r);
          return true;
        } catch {
          return false;
        }
      }, 'must be between 0 and 100')
      .openapi({ example: '19' }),
    inclusive: z.boolean().openapi({ description: 'true when prices already include the tax' }),
    name: z.string().trim().min(1).max(64).openapi({ example: 'VAT' }),
  })
  .openapi('TaxRate');

export const PutTaxRatesBody = z
  .strictObject({
    rates: z
      .array(TaxRateSchema)
      .min(1)
      .max(300)
      .superRefine((rates, ctx) => {
        const seen = new Set<string>();
        rates.forEach((r, i) => {
          if (seen.has(r.country)) ctx.addIssue({ code: 'custom', path: [i, 'country'], message: `"${r.country}" appears more than once` });
          seen.add(r.country);
        });
        if (!seen.has('*')) ctx.addIssue({ code: 'custom', message: 'must include the default row, country "*"' });
      }),
  })
  .openapi('TaxRates');

const TaxRatesSchema = z.object({ rates: z.array(TaxRateSchema) }).openapi('TaxRateTable');

export function registerTaxRoutes(api: Api, deps: TaxRoutesDeps): void {
  const { db } = deps;

  api.route({
    method: 'get',
    path: '/v1/tax-rates',
    summary: `The brand's tax table, the default ("*") first. ${USED_BY_INVOICES} Without a table, invoices carry no tax.`,
    tag: 'tax',
    responses: { 200: { description: 'The tax table (empty until the brand sets one)', schema: TaxRatesSchema } },
    handler: async ({ brand }) => ({ status: 200, body: { rates: await listTaxRates(db, brand.id) } }),
  });

  api.route({
    method: 'put',
    path: '/v1/tax-rates',
    summary: `Replace the brand's whole tax table in one step; it must include the default row "*". ${USED_BY_INVOICES} Finalized invoices keep the rate they were issued with.`,
    tag: 'tax',
    body: PutTaxRatesBody,
    responses: { 200: { description: 'The new tax table', schema: TaxRatesSchema } },
    handler: async ({ body, brand }) => ({ status: 200, body: { rates: await replaceTaxRates(db, brand.id, body.rates) } }),
  });
}
