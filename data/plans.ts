/** The versioned plan catalog in PostgreSQL. Read by the API and by activities. */
import type { Db } from '../infra/db';
import type { Entitlements, Plan, UsageComponent } from '../domain/catalog';

interface PlanRow {
  brand_id: string;
  code: string;
  version: number;
  name: string;
  currency: string;
  recurring_fee_minor: string;
  cost_to_serve_minor: string;
  billing_period: string;
  entitlements: Entitlements;
  usage_components: UsageComponent[];
  created_at: Date;
}

export function planFromRow(r: PlanRow): Plan {
  return {
    brandId: r.brand_id,
    code: r.code,
    version: r.version,
    name: r.name,
    currency: r.currency,
    recurringFeeMinor: Number(r.recurring_fee_minor),
    costToServeMinor: Number(r.cost_to_serve_minor),
    billingPeriod: r.billing_period,
    entitlements: r.entitlements,
    usageComponents: r.usage_components,
    createdAt: r.created_at.toISOString(),
  };
}

/** The newest version of every plan of a brand, ordered by code. */
export async function latestPlans(db: Db, brandId: string): Promise<Plan[]> {
  const rows = await db<PlanRow>('plans')
    .distinctOn('code')
    .where({ brand_id: brandId })
    .orderBy([{ column: 'code' }, { column: 'version', order: 'desc' }]);
  return rows.map(planFromRow);
}

export async function latestPlan(db: Db, brandId: string, code: string): Promise<Plan | undefined> {
  const row = await db<PlanRow>('plans').where({ brand_id: brandId, code }).orderBy('version', 'desc').first();
  return row ? planFromRow(row) : undefined;
}

export async function planVersion(db: Db, brandId: string, code: string, version: number): Promise<Plan | undefined> {
  const row = await db<PlanRow>('plans').where({ brand_id: brandId, code, version }).first();
  return row ? planFromRow(row) : undefined;
}

export async function planVersions(db: Db, brandId: string, code: string): Promise<Plan[]> {
  const rows = await db<PlanRow>('plans').where({ brand_id: brandId, code }).orderBy('version', 'asc');
  return rows.map(planFromRow);
}
