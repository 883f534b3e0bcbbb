/**
 * A cheap fingerprint of every table in the database: row count and the sum of a 64-bit hash of
 * each row's text. A request that inserts, deletes or updates any row anywhere changes it.
 */
import type { Db } from '../../infra/db';

export type Snapshot = Map<string, { rows: string; hash: string }>;

let query: string | undefined;

export async function snapshotTables(db: Db): Promise<Snapshot> {
  if (!query) {
    const tables: Array<{ table_name: string }> = await db('information_schema.tables')
      .where({ table_schema: 'public', table_type: 'BASE TABLE' })
      .whereNotIn('table_name', ['knex_migrations', 'knex_migrations_lock'])
      .orderBy('table_name')
      .select('table_name');
    query = tables
      .map(({ table_name: t }) => `select '${t}' as t, count(*)::text as rows, coalesce(sum(hashtextextended(x::text, 0)), 0)::text as hash from "${t}" x`)
      .join(' union all ');
  }
  const { rows } = (await db.raw(query)) as { rows: Array<{ t: string; rows: string; hash: string }> };
  return new Map(rows.map((r) => [r.t, { rows: r.rows, hash: r.hash }]));
}

/** The tables whose fingerprint differs, with their row counts before → after. */
export function changedTables(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const [t, a] of after) {
    const b = before.get(t);
    if (!b || b.rows !== a.rows || b.hash !== a.hash) out.push(`${t} (rows ${b?.rows ?? '?'} → ${a.rows}${b && b.rows === a.rows ? ', content changed' : ''})`);
  }
  return out;
}

/**
 * The next transaction id PostgreSQL will hand out. Only a transaction that writes takes one, so
 * while it stays the same nothing anywhere in the database was written (or even tried to be):
 * the cheap check before the full fingerprint.
 */
export async function nextXid(db: Db): Promise<string> {
  const { rows } = (await db.raw('select pg_snapshot_xmax(pg_current_snapshot())::text as x')) as { rows: Array<{ x: string }> };
  return rows[0]!.x;
}
