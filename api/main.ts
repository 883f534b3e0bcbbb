/**
 * `npm run api`: the HTTP API alone, against external services (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, DATABASE_URL). Stops cleanly on SIGINT/SIGTERM.
 */
import { loadConfig, requireExternal } from '../infra/config';
import { createDb } from '../infra/db';
import { createLogger } from '../infra/logger';
import { connectClient } from '../infra/temporal';
import { createApp } from './app';
import { listen } from './server';

async function main(): Promise<void> {
  const config = loadConfig();
  requireExternal(config, ['DATABASE_URL', 'TEMPORAL_ADDRESS']);
  const logger = createLogger(config.logLevel, 'closeloop-api');
  const db = createDb(config.databaseUrl!);
  const { client, connection } = await connectClient({ address: config.temporalAddress!, namespace: config.temporalNamespace });
  const app = createApp({ temporal: client, db, logger, config: { taskQueue: config.taskQueue } });
  const server = await listen(app, config.apiPort, config.apiHost);
  logger.info({ url: server.url }, 'api listening');
  const stop = async () => {
    await server.close();
    await connection.close();
    await db.destroy();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
