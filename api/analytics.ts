/** /v1/analytics: the acquisition funnel by lead source and campaign, the loop closed on revenue. */
import { acquisitionFunnel, FunnelWindow } from '../data/leads';
import { funnelTotals, FunnelRevenue } from '../domain/acquisition';
import { toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { Api, z, MoneySchema as Money } from './route';

export interface AnalyticsRoutesDeps {
  db: Db;
}

const DAY_MS = 86_400_000;

export const AcquisitionQuery = z
  .strictObject({
    from: z.iso.date().optional().openapi({ description: 'First day (UTC) of lead capture, inclusive', example: '2026-11-01' }),
    to: z.iso.date().optional().openapi({ description: 'Last day (UTC) of lead capture, inclusive', example: '2026-11-30' }),
  })
  // ISO dates of equal length compare correctly as strings.
  .refine((q) => !q.from || !q.to || q.from <= q.to, { path: ['from'], message: 'must not be after "to"' });

const Counts = {
  leads: z.number().int(),
  conversions: z.number().int(),
  expired: z.number().int(),
  open: z.number().int(),
  conversionRate: z.string().openapi({ description: 'conversions / leads, 4 decimal places, half away from zero', example: '0.2500' }),
  revenue: z.array(Money).openapi({ description: 'Revenue (invoiced, net of tax, less credit notes) from the customers these leads became, to date, one entry per currency' }),
};

export const AcquisitionFunnelSchema = z
  .object({
    from: z.string().nullable(),
    to: z.string().nullable(),
    bySource: z.array(z.object({ source: z.string(), campaign: z.string().nullable(), ...Counts })),
    totals: z.object(Counts),
  })
  .openapi('AcquisitionFunnel');

const revenueJson = (revenue: FunnelRevenue[]) => revenue.map((r) => toMoneyJson({ minor: r.minor, currency: r.currency }));

export function registerAnalyticsRoutes(api: Api, deps: AnalyticsRoutesDeps): void {
  const { db } = deps;

  api.route({
    method: 'get',
    path: '/v1/analytics/acquisition',
    summary: 'The acquisition funnel of leads captured in a date range, by source and campaign: leads, outcomes, conversion rate, attributed revenue',
    tag: 'analytics',
    query: AcquisitionQuery,
    responses: {
      200: { description: 'The funnel, one row per source and campaign, and its totals', schema: AcquisitionFunnelSchema },
    },
    handler: async ({ query, brand }) => {
      const window: FunnelWindow = {
        ...(query.from ? { from: new Date(`${query.from}T00:00:00Z`) } : {}),
        ...(query.to ? { before: new Date(Date.parse(`${query.to}T00:00:00Z`) + DAY_MS) } : {}),
      };
      const rows = await acquisitionFunnel(db, brand.id, window);
      const totals = funnelTotals(rows);
      return {
        status: 200,
        body: {
          from: query.from ?? null,
          to: query.to ?? null,
          bySource: rows.map((r) => ({
            source: r.source,
            campaign: r.campaign,
            leads: r.leads,
            conversions: r.conversions,
            expired: r.expired,
            open: r.open,
            conversionRate: r.conversionRate,
            revenue: revenueJson(r.revenue),
          })),
          totals: { ...totals, revenue: revenueJson(totals.revenue) },
        },
      };
    },
  });
}
