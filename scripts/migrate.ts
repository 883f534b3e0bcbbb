/** `npm run migrate`: applies pending knex migrations to DATABASE_URL (or the embedded database). */
import { loadConfig } from '../infra/config';
import { migrationConfig } from '../infra/db';
import { scriptDb } from './script-db';

async function main(): Promise<void> {
  const { db, applied, close } = await scriptDb(loadConfig());
  try {
    const [completed] = (await db.migrate.list(migrationConfig)) as [unknown[], unknown[]];
    console.log(`migrations up to date: ${completed.length} applied in all, ${applied.length} just now${applied.length ? ` (${applied.join(', ')})` : ''}`);
  } finally {
    await close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
