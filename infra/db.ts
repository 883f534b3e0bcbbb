/** The knex handle and migrations. Only activities, the API and scripts touch the database. */
import path from 'node:path';
import knex, { Knex } from 'knex';

export type Db = Knex;

export function createDb(url: string, opts: { poolMax?: number } = {}): Db {
  return knex({
    client: 'pg',
    connection: url,
    pool: { min: 0, max: opts.poolMax ?? 10 },
  });
}

// Compiled migrations live beside this file's compiled output (dist/migrations).
const MIGRATIONS_DIR = path.resolve(__dirname, '..', 'migrations');

export const migrationConfig: Knex.MigratorConfig = {
  directory: MIGRATIONS_DIR,
  loadExtensions: ['.js'],
  tableName: 'knex_migrations',
};

export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(migrationConfig)) as [number, string[]];
  return applied;
}

export async function ping(db: Db): Promise<void> {
  await db.raw('select 1');
}
