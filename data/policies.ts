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
