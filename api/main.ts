/**
 * `npm run api`: the HTTP API alone, against external services (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, DATABASE_URL). Stops cleanly on SIGINT/SIGTERM.
 */
import { loadConfig, requireExternal } from '../infra/config';
import { createDb } from '../infra/db';
import { gatewayFromEnv } from '../infra/gateway';
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
  // Refunds and gateway webhooks need the worker's gateway; without one they answer 503.
  const gateway = process.env.STRIPE_SECRET_KEY?.trim() || process.env.GATEWAY_URL?.trim() ? gatewayFromEnv(process.env) : undefined;
  if (!gateway) logger.warn('no GATEWAY_URL or STRIPE_SECRET_KEY: refunds and gateway webhooks answer 503');
  if (!config.linkSecret) logger.warn('LINK_SIGNING_SECRET is not set: the invoice links in emails will not open');
  const app = createApp({ temporal: client, db, logger, config: { taskQueue: config.taskQueue }, gateway, linkSecret: config.linkSecret });
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
