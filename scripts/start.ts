/**
 * `npm start`: everything on embedded defaults. Temporal dev server (SQLite file, Web UI,
 * search attributes), embedded PostgreSQL, migrations, a seeded sandbox brand with its dev API
 * key, the worker and the API; one banner with every URL. Ctrl-C stops all of it; the next
 * start resumes the same data. Any external service set in the environment is used instead.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { createApp } from '../api/app';
import { createApiKey, hashApiKey } from '../api/auth';
import { listen } from '../api/server';
import { ensureBrand } from '../infra/brands';
import { loadConfig, pathsFor } from '../infra/config';
import { createDb, migrateLatest } from '../infra/db';
import { createLogger } from '../infra/logger';
import { freePort, startEmbeddedPostgres } from '../infra/postgres';
import { isPortFree, RunningProcess, startTemporalDevServer } from '../infra/processes';
import { loadSandboxGatewayConfig } from '../gateway/main';
import { startSandboxGateway } from '../gateway/sandbox-server';
import { gatewayFromEnv } from '../infra/gateway';
import { createMailer } from '../infra/mailer';
import { startSmtpSink } from '../infra/smtp-sink';
import { requireTemporalCli } from '../infra/temporal-binaries';
import { connectClient, connectWorker } from '../infra/temporal';
import { createWorker } from '../workers/worker';
import { allBrandIds, ensureReconciliationSchedules } from '../workers/schedules';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/shared';
import { seedDemoBrand } from './seed';

const DEV_BRAND = { id: 'demo', name: 'Demo Co (sandbox)', currency: 'USD', mode: 'sandbox' as const };

const step = (msg: string) => process.stdout.write(`▸ ${msg}\n`);

async function pickPort(preferred: number, what: string): Promise<number> {
  if (await isPortFree(preferred)) return preferred;
  const port = await freePort();
  step(`${what}: port ${preferred} is taken, using ${port}`);
  return port;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const paths = pathsFor(config);
  fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o755 });
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
  // No SDK signal handling: shutdown below stops the API, then the worker, then the servers.
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const stops: Array<[string, () => Promise<void>]> = [];

  let stopping = false;
  const shutdown = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\n');
    for (const [what, stop] of stops.reverse()) {
      step(`stopping ${what}`);
      await stop().catch((err) => console.error(`  ${what}: ${(err as Error).message}`));
    }
    step('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  try {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      step(`starting embedded PostgreSQL (data in ${paths.postgresData})`);
      const pg = await startEmbeddedPostgres({ dataDir: paths.postgresData, port: config.embeddedPostgresPort });
      stops.push(['PostgreSQL', pg.stop]);
      databaseUrl = pg.url;
      fs.writeFileSync(paths.runtime, JSON.stringify({ databaseUrl, pid: process.pid }), { mode: 0o600 });
      stops.push(['runtime file', async () => fs.rmSync(paths.runtime, { force: true })]);
    }
    const db = createDb(databaseUrl);
    stops.push(['database pool', () => db.destroy()]);
    step('running migrations');
    const applied = await migrateLatest(db);
    if (applied.length) step(`applied ${applied.length} migration(s)`);

    await ensureBrand(db, DEV_BRAND);
    const seeded = await seedDemoBrand(db);
    if (seeded.plans.length) step(`seeded plans ${seeded.plans.join(', ')} for brand ${DEV_BRAND.id}`);
    if (seeded.policies.length) step(`seeded ${seeded.policies.join(', ')} policies for brand ${DEV_BRAND.id}`);
    for (const s of seeded.skipped) step(`not seeding the ${s.kind} policy: ${s.reason}`);
    const devKey = await devApiKey(db, paths.devApiKey);
    // The secret that signs invoice links, kept in the state folder so links survive restarts.
    const linkSecret = config.linkSecret ?? localSecret(path.join(config.stateDir, 'link-secret'));

    let temporalAddress = config.temporalAddress;
    let uiUrl: string | undefined;
    if (!temporalAddress) {
      const cli = requireTemporalCli();
      const port = await pickPort(config.temporalDevPort, 'Temporal');
      const uiPort = await pickPort(config.temporalUiPort, 'Temporal Web UI');
      step(`starting Temporal dev server (${cli}, state in ${paths.temporalDb})`);
      const temporal: RunningProcess = await startTemporalDevServer({
        cliPath: cli,
        port,
        uiPort,
        namespace: config.temporalNamespace,
        dbFilename: paths.temporalDb,
        searchAttributes: SEARCH_ATTRIBUTE_KEYS.map((k) => k.name),
        onOutput: (line) => logger.debug({ temporal: line.trim() }),
      });
      stops.push(['Temporal dev server', temporal.stop]);
      temporalAddress = `127.0.0.1:${port}`;
      uiUrl = `http://127.0.0.1:${uiPort}`;
    }
    const target = { address: temporalAddress, namespace: config.temporalNamespace };

    // Outbound email goes to SMTP_HOST, or to a loopback sink that keeps every message as .eml.
    let smtp = { host: config.smtpHost ?? '', port: config.smtpPort };
    const mailDir = path.join(config.stateDir, 'mail');
    if (!config.smtpHost) {
      step(`starting the SMTP sink (messages saved in ${mailDir})`);
      const sink = await startSmtpSink({ port: await pickPort(config.smtpPort, 'SMTP sink'), dir: mailDir });
      stops.push(['SMTP sink', sink.stop]);
      smtp = { host: sink.host, port: sink.port };
    }

    // Payments go to Stripe (STRIPE_SECRET_KEY), GATEWAY_URL, or the sandbox gateway started here.
    let sandboxUrl: string | undefined;
    if (!process.env.STRIPE_SECRET_KEY && !process.env.GATEWAY_URL) {
      const sandboxConfig = loadSandboxGatewayConfig(process.env);
      step(`starting the sandbox payment gateway (state in ${sandboxConfig.stateFile})`);
      const sandbox = await startSandboxGateway({
        ...sandboxConfig,
        port: await pickPort(sandboxConfig.port, 'sandbox gateway'),
        webhookUrl: sandboxConfig.webhookUrl ?? `${config.publicUrl}/v1/webhooks/gateway`,
      });
      stops.push(['sandbox gateway', sandbox.stop]);
      sandboxUrl = sandbox.url;
    }
    const gateway = gatewayFromEnv(process.env, sandboxUrl);

    step('bundling workflows and starting the worker');
    const workerConnection = await connectWorker(target);
    const mailer = createMailer({ host: smtp.host, port: smtp.port, from: config.mailFrom });
    const worker = await createWorker({
      connection: workerConnection,
      namespace: config.temporalNamespace,
      taskQueue: config.taskQueue,
      db,
      mailer,
      publicUrl: config.publicUrl,
      gateway,
      linkSecret,
    });
    const workerRun = worker.run();
    stops.push([
      'worker',
      async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await workerRun;
        await workerConnection.close();
        mailer.close();
      },
    ]);
    workerRun.catch((err) => {
      console.error(`worker failed: ${(err as Error).message}`);
      void shutdown(1);
    });

    const { client, connection } = await connectClient(target);
    stops.push(['Temporal client', () => connection.close()]);
    await ensureReconciliationSchedules(client, { taskQueue: config.taskQueue, brands: await allBrandIds(db), gateway: gateway.name });
    const app = createApp({ temporal: client, db, logger, config: { taskQueue: config.taskQueue }, gateway, linkSecret });
    const server = await listen(app, config.apiPort, config.apiHost);
    stops.push(['API', server.close]);

    const ns = encodeURIComponent(config.temporalNamespace);
    const lines = [
      'Closeloop is running',
      '',
      `  API            ${server.url}/v1   (OpenAPI: ${server.url}/v1/openapi.json)`,
      `  Health         ${server.url}/healthz  ${server.url}/readyz  ${server.url}/metrics`,
      uiUrl ? `  Temporal UI    ${uiUrl}/namespaces/${ns}/workflows` : `  Temporal       ${temporalAddress} (external)`,
      `  Temporal gRPC  ${temporalAddress}   namespace ${config.temporalNamespace}, task queue ${config.taskQueue}`,
      `  PostgreSQL     ${databaseUrl.replace(/\/\/([^:]+):[^@]+@/, '//$1:***@')}`,
      `  Mail (SMTP)    ${smtp.host}:${smtp.port}${config.smtpHost ? ' (external)' : `, messages saved in ${mailDir}`}`,
      `  Payments       ${gateway.name}${sandboxUrl ? ` gateway at ${sandboxUrl} (tokens: tok_visa, tok_soft_decline, tok_hard_decline, …)` : ''}`,
      `  Brand          ${DEV_BRAND.id} (${DEV_BRAND.mode}, ${DEV_BRAND.currency})`,
      `  Dev API key    ${devKey}`,
      '',
      '  Ctrl-C stops everything; the next `npm start` resumes the same data.',
    ];
    const width = Math.max(...lines.map((l) => l.length)) + 2;
    const bar = '─'.repeat(width);
    const auth = `-H "Authorization: Bearer ${devKey}"`;
    const json = `-H 'Content-Type: application/json'`;
    const tryIt = [
      '',
      'Try it:',
      `  curl -s ${server.url}/v1/plans ${auth}`,
      `  curl -s '${server.url}/v1/offers/preview?country=DE' ${auth}`,
      `  curl -s -X POST ${server.url}/v1/customers ${auth} ${json} \\`,
      `    -d '{"id":"cus_1","email":"ada@example.com","plan":"minute","paymentMethod":"tok_visa"}'`,
      `  curl -s ${server.url}/v1/customers/cus_1 ${auth}`,
      `  curl -s -X POST ${server.url}/v1/leads ${auth} ${json} -d '{"email":"bo@example.com","source":"ads","campaign":"launch"}'`,
      `  curl -s ${server.url}/v1/analytics/acquisition ${auth}`,
      '',
    ];
    process.stdout.write(`\n┌${bar}┐\n${lines.map((l) => `│ ${l.padEnd(width - 1)}│`).join('\n')}\n└${bar}┘\n${tryIt.join('\n')}\n`);
  } catch (err) {
    console.error(`\nnpm start failed: ${(err as Error).message}`);
    await shutdown(1);
  }
}

function localSecret(file: string): string {
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const secret = crypto.randomBytes(32).toString('base64url');
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/** The dev key is kept (in clear) only in the git-ignored state folder, so restarts print the same one. */
async function devApiKey(db: ReturnType<typeof createDb>, file: string): Promise<string> {
  if (fs.existsSync(file)) {
    const saved = fs.readFileSync(file, 'utf8').trim();
    const row = await db('api_keys').where({ key_hash: hashApiKey(saved), brand_id: DEV_BRAND.id }).whereNull('revoked_at').first();
    if (row) return saved;
  }
  const key = await createApiKey(db, DEV_BRAND.id, 'dev key (npm start)');
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

void main();
