/**
 * Reconciliation results as operators and client apps read them: the brand's runs with their
 * counts, and one run with every item (matched and mismatched) and the payouts it recorded.
 * Runs are written by the reconciliation workflow only; another brand's run answers 404.
 */
import { getRun, listRuns } from '../data/reconciliation';
import { RECONCILIATION_KINDS } from '../domain/reconciliation';
import { money, toMoneyJson } from '../domain/money';
import type { Db } from '../infra/db';
import { ApiError } from './errors';
import { Api, ErrorSchema, z, MoneySchema } from './route';

export interface ReconciliationRoutesDeps {
  db: Db;
}

export const RECONCILIATION_RUN_ID = /^rr_[a-f0-9]{32}$/;

const Kind = z.enum(RECONCILIATION_KINDS);

const RunSummarySchema = z
  .object({
    id: z.string(),
    gateway: z.string(),
    reportDate: z.string().openapi({ example: '2026-11-24' }),
    status: z.enum(['running', 'completed', 'failed']),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
    counts: z.record(z.string(), z.unknown()).openapi({ description: 'Items per kind, lines and records compared, unclaimed lines, payouts' }),
    mismatches: z.number().int().openapi({ description: 'missing_ours + missing_gateway + amount_mismatch' }),
    error: z.string().nullable(),
    links: z.object({ self: z.string() }),
  })
  .openapi('ReconciliationRunSummary');

const ItemSchema = z
  .object({
    kind: Kind,
    report: z
      .object({ lineType: z.string(), lineId: z.string(), gatewayPaymentId: z.string().nullable(), amount: MoneySchema.nullable(), fee: MoneySchema.nullable() })
      .nullable()
      .openapi({ description: "The settlement line; null when the report does not carry our record. Amounts are signed from the merchant's side" }),
    ours: z
      .object({ type: z.string(), id: z.string(), gatewayId: z.string().nullable(), amount: MoneySchema.nullable() })
      .nullable()
      .openapi({ description: 'Our record; null when we have none' }),
    resolvedByRunId: z.string().nullable().openapi({ description: 'On a timing difference: the run whose report carried it' }),
    detail: z.record(z.string(), z.unknown()),
  })
  .openapi('ReconciliationItem');

const PayoutSchema = z
  .object({ id: z.string(), currency: z.string(), gross: MoneySchema, fees: MoneySchema, net: MoneySchema, lines: z.number().int(), version: z.number().int() })
  .openapi('Payout');

const RunSchema = RunSummarySchema.extend({ items: z.array(ItemSchema), payouts: z.array(PayoutSchema) }).openapi('ReconciliationRun');

const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(366).optional().openapi({ description: 'At most this many runs (default 60)' }),
});
const RunParams = z.strictObject({
  id: z.string().regex(RECONCILIATION_RUN_ID, 'a reconciliation run id: "rr_" and 32 lowercase hex digits').openapi({ example: 'rr_0123456789abcdef0123456789abcdef' }),
});

type Row = Record<string, any>;

const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : v === null || v === undefined ? null : String(v));
const amount = (minor: unknown, currency: unknown) =>
  minor === null || minor === undefined || !currency ? null : toMoneyJson(money(BigInt(minor as string), String(currency).trim()));

function summaryView(r: Row) {
  const counts = (r.counts ?? {}) as Record<string, unknown>;
  const mismatches = ['missing_ours', 'missing_gateway', 'amount_mismatch'].reduce((sum, k) => sum + Number(counts[k] ?? 0), 0);
  return {
    id: r.id,
    gateway: r.gateway,
    reportDate: r.report_date,
    status: r.status,
    startedAt: iso(r.started_at)!,
    finishedAt: iso(r.finished_at),
    counts,
    mismatches,
    error: r.error ?? null,
    links: { self: `/v1/reconciliation/runs/${r.id}` },
  };
}

function itemView(i: Row) {
  return {
    kind: i.kind,
    report: i.line_id
      ? {
          lineType: i.line_type,
          lineId: i.line_id,
          gatewayPaymentId: i.gateway_payment_id ?? null,
          amount: amount(i.report_amount_minor, i.currency),
          fee: amount(i.report_fee_minor, i.currency),
        }
      : null,
    ours: i.our_record_id ? { type: i.our_record_type, id: i.our_record_id, gatewayId: i.our_gateway_id ?? null, amount: amount(i.our_amount_minor, i.currency) } : null,
    resolvedByRunId: i.resolved_by_run_id ?? null,
    detail: i.detail ?? {},
  };
}

function payoutView(p: Row) {
  return {
    id: p.id,
    currency: String(p.currency).trim(),
    gross: amount(p.gross_minor, p.currency)!,
    fees: amount(p.fees_minor, p.currency)!,
    net: amount(p.net_minor, p.currency)!,
    lines: Number(p.line_count),
    version: Number(p.version),
  };
}

export function registerReconciliationRoutes(api: Api, { db }: ReconciliationRoutesDeps): void {
  api.route({
    method: 'get',
    path: '/v1/reconciliation/runs',
    summary: "The brand's reconciliation runs, newest report day first, with their counts",
    tag: 'reconciliation',
    query: ListQuery,
    responses: { 200: { description: 'The runs', schema: z.object({ data: z.array(RunSummarySchema) }) } },
    handler: async ({ query, brand }) => {
      const rows = await listRuns(db, brand.id, query.limit ?? 60);
      return { status: 200, body: { data: rows.map(summaryView) } };
    },
  });

  api.route({
    method: 'get',
    path: '/v1/reconciliation/runs/:id',
    summary: 'One reconciliation run: every item, matched or not, and the payouts it recorded net of fees',
    tag: 'reconciliation',
    params: RunParams,
    responses: {
      200: { description: 'The run', schema: RunSchema },
      404: { description: 'No such run for this brand', schema: ErrorSchema },
    },
    handler: async ({ params, brand }) => {
      const found = await getRun(db, brand.id, params.id);
      if (!found) throw new ApiError(404, 'NOT_FOUND', `reconciliation run "${params.id}" not found`, [{ field: 'params.id', message: 'no run with this id' }]);
      return { status: 200, body: { ...summaryView(found.run), items: found.items.map(itemView), payouts: found.payouts.map(payoutView) } };
    },
  });
}
