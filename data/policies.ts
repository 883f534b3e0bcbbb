/** Per-brand policies in PostgreSQL; a kind the brand never set reads as its default. */
import type { Db } from '../infra/db';
import { DEFAULT_POLICIES, Policy, PolicyKind, POLICY_SCHEMAS } from '../domain/policies';

export interface StoredPolicy<K extends PolicyKind> {
  kind: K;
  version: number;
  document: Policy<K>;
  /** false when nothing is stored and the default applies. */
  custom: boolean;
  updatedAt: string | null;
}

export async function getPolicy<K extends PolicyKind>(db: Db, brandId: string, kind: K): Promise<StoredPolicy<K>> {
  const row = await db('policies').where({ brand_id: brandId, kind }).first();
  if (!row) return { kind, version: 0, document: DEFAULT_POLICIES[kind], custom: false, updatedAt: null };
  // Stored documents were validated on write; parsing again applies defaults added since.
  const document = POLICY_SCHEMAS[kind].parse(row.document) as Policy<K>;
  return { kind, version: row.version, document, custom: true, updatedAt: (row.updated_at as Date).toISOString() };
}

function storedFromRow<K extends PolicyKind>(kind: K, row: { version: number; document: unknown; updated_at: Date }): StoredPolicy<K> {
  return { kind, version: row.version, document: row.document as Policy<K>, custom: true, updatedAt: row.updated_at.toISOString() };
}

/**
 * Stores a brand's (already validated) policy document: version 1 the first time, the next
 * version on every change. Putting the document already stored changes nothing (`changed: false`).
 */
export async function putPolicy<K extends PolicyKind>(
  db: Db,
  brandId: string,
  kind: K,
  document: Policy<K>,
): Promise<{ policy: StoredPolicy<K>; changed: boolean }> {
  const { rows } = await db.raw(
    `INSERT INTO policies (brand_id, kind, version, document, updated_at)
     VALUES (?, ?, 1, ?::jsonb, now())
     ON CONFLICT (brand_id, kind) DO UPDATE
       SET version = policies.version + 1, document = EXCLUDED.document, updated_at = EXCLUDED.updated_at
       WHERE policies.document IS DISTINCT FROM EXCLUDED.document
     RETURNING version, document, updated_at`,
    [brandId, kind, JSON.stringify(document)],
  );
  if (rows.length > 0) return { policy: storedFromRow(kind, rows[0]), changed: true };
  const row = await db('policies').where({ brand_id: brandId, kind }).first('version', 'document', 'updated_at');
  return { policy: storedFromRow(kind, row), changed: false };
}

/** Stores a document only when the brand has none of this kind yet (seeding); true when stored. */
export async function createPolicyIfAbsent<K extends PolicyKind>(db: Db, brandId: string, kind: K, document: Policy<K>): Promise<boolean> {
  const inserted = await db('policies')
    .insert({ brand_id: brandId, kind, version: 1, document: JSON.stringify(document) })
    .onConflict(['brand_id', 'kind'])
    .ignore()
    .returning('kind');
  return inserted.length > 0;
}
