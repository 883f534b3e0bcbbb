/**
 * `npm run worker`: the worker alone, against external services (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, DATABASE_URL). Stops cleanly on SIGINT/SIGTERM.
 */
import { Client } from '@temporalio/client';
import { ConfigError, loadConfig, requireExternal } from '../infra/config';
import { gatewayFromEnv } from '../infra/gateway';
import { createMailer } from '../infra/mailer';
import { createDb, migrateLatest } from '../infra/db';
import { createLogger } from '../infra/logger';
import { ensureSearchAttributes } from '../infra/search-attributes';
import { connectWorker } from '../infra/temporal';
import { createWorker } from './worker';
import { allBrandIds, ensureReconciliationSchedules } from './schedules';

async function main(): Promise<void> {
  const config = loadConfig();
  requireExternal(config, ['DATABASE_URL', 'TEMPORAL_ADDRESS']);
  const log = createLogger(config.logLevel, 'closeloop-worker');
  const db = createDb(config.databaseUrl!);
  if (process.env.MIGRATE_ON_START !== '0') await migrateLatest(db);
  const connection = await connectWorker({ address: config.temporalAddress!, namespace: config.temporalNamespace });
  if (process.env.REGISTER_SEARCH_ATTRIBUTES !== '0') {
    await ensureSearchAttributes(connection, config.temporalNamespace);
  }
  if (!config.smtpHost) throw new ConfigError('SMTP_HOST must be set for the worker: it emails invoices and notices');
  const mailer = createMailer({ host: config.smtpHost, port: config.smtpPort, from: config.mailFrom });
  const gateway = gatewayFromEnv(process.env);
  if (!config.linkSecret) throw new ConfigError('LINK_SIGNING_SECRET must be set for the worker (and the same value for the API): it signs the invoice links in emails');
  const worker = await createWorker({
    connection,
    namespace: config.temporalNamespace,
    taskQueue: config.taskQueue,
    db,
    mailer,
    publicUrl: config.publicUrl,
    gateway,
    linkSecret: config.linkSecret,
  });
  await ensureReconciliationSchedules(new Client({ connection, namespace: config.temporalNamespace }), { taskQueue: config.taskQueue, brands: await allBrandIds(db), gateway: gateway.name });
  log.info({ taskQueue: config.taskQueue, namespace: config.temporalNamespace }, 'worker started');
  // Worker.run() shuts down on SIGINT/SIGTERM by default (the SDK's shutdownSignals).
  await worker.run();
  await connection.close();
  mailer.close();
  await db.destroy();
  log.info('worker stopped');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
