/**
 * The database an admin script should use: DATABASE_URL, else the embedded server of a
 * running `npm start`, else the embedded server started just for this script.
 */
import fs from 'node:fs';
import { Config, pathsFor } from '../infra/config';
import { createDb, Db, migrateLatest, ping } from '../infra/db';
import { startEmbeddedPostgres } from '../infra/postgres';

export async function scriptDb(config: Config): Promise<{ db: Db; applied: string[]; close(): Promise<void> }> {
  const paths = pathsFor(config);
  let url = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url && fs.existsSync(paths.runtime)) {
    const candidate = (JSON.parse(fs.readFileSync(paths.runtime, 'utf8')) as { databaseUrl?: string }).databaseUrl;
    if (candidate) {
      const probe = createDb(candidate, { poolMax: 1 });
      try {
        await ping(probe);
        url = candidate;
      } catch {
        // npm start is not running any more; fall through to our own server.
      } finally {
        await probe.destroy();
      }
    }
  }
  if (!url) {
    const pg = await startEmbeddedPostgres({ dataDir: paths.postgresData });
    url = pg.url;
    stopEmbedded = pg.stop;
  }
  const db = createDb(url, { poolMax: 2 });
  const applied = await migrateLatest(db);
  return {
    db,
    applied,
    close: async () => {
      await db.destroy();
      await stopEmbedded?.();
    },
  };
}
