/** The versioned plan catalog in PostgreSQL. Read by the API and by activities. */
import type { Db } from '../infra/db';
import { planDraft, type Entitlements, type Plan, type PlanDraft, type PlanInput, type UsageComponent } from '../domain/catalog';

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

/** The codes of every plan a brand has ever had (plans are never deleted). */
export async function planCodes(db: Db, brandId: string): Promise<Set<string>> {
  const rows = await db('plans').distinct('code').where({ brand_id: brandId });
  return new Set(rows.map((r: { code: string }) => r.code));
}

/** JSON with object keys sorted, so documents read back from jsonb compare equal to input. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function sameVersion(row: PlanRow, draft: PlanDraft): boolean {
  return (
    row.name === draft.name &&
    row.currency === draft.currency &&
    Number(row.recurring_fee_minor) === draft.recurringFeeMinor &&
    Number(row.cost_to_serve_minor) === draft.costToServeMinor &&
    row.billing_period === draft.billingPeriod &&
    canonical(row.entitlements) === canonical(draft.entitlements) &&
    canonical(row.usage_components) === canonical(draft.usageComponents)
  );
}

/**
 * Adds a version of a plan: the latest version + 1, or the latest itself (`created: false`)
 * when nothing changed, so re-sending the same plan is harmless. Throws PlanInputError
 * (before touching the database) when an amount or the period does not fit the brand.
 */
export async function createPlanVersion(
  db: Db,
  brand: { id: string; currency: string; mode: 'sandbox' | 'live' },
  input: PlanInput,
): Promise<{ plan: Plan; created: boolean }> {
  const draft = planDraft(input, brand);
  return db.transaction(async (trx) => {
    // Serialises writers of one plan code so two concurrent changes get versions n+1 and n+2.
    await trx.raw('SELECT pg_advisory_xact_lock(hashtextextended(?, 0))', [`plans:${brand.id}:${draft.code}`]);
    const latest = await trx<PlanRow>('plans').where({ brand_id: brand.id, code: draft.code }).orderBy('version', 'desc').first();
    if (latest && sameVersion(latest, draft)) return { plan: planFromRow(latest), created: false };
    const [row] = await trx<PlanRow>('plans')
      .insert({
        brand_id: brand.id,
        code: draft.code,
        version: (latest?.version ?? 0) + 1,
        name: draft.name,
        currency: draft.currency,
        recurring_fee_minor: String(draft.recurringFeeMinor),
        cost_to_serve_minor: String(draft.costToServeMinor),
        billing_period: draft.billingPeriod,
        // Arrays must be sent as JSON text: node-postgres would send them as PostgreSQL arrays.
        entitlements: JSON.stringify(draft.entitlements) as unknown as Entitlements,
        usage_components: JSON.stringify(draft.usageComponents) as unknown as UsageComponent[],
      })
      .returning('*');
    return { plan: planFromRow(row as PlanRow), created: true };
  });
}
