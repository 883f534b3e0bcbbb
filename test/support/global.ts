/**
 * Mocha global fixture: one real PostgreSQL for the whole run (embedded in a temporary folder,
 * or TEST_DATABASE_URL), migrated once. Suites read its URL from `testDatabaseUrl()`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { checkLedger } from '../../data/ledger';
import { createDb, Db, migrateLatest } from '../../infra/db';
import { EmbeddedPostgresHandle, startEmbeddedPostgres } from '../../infra/postgres';
import { SmtpSink, startSmtpSink } from '../../infra/smtp-sink';
import { SandboxGateway, startSandboxGateway } from '../../gateway/sandbox-server';

let pg: EmbeddedPostgresHandle | undefined;
let sink: SmtpSink | undefined;
let sandbox: SandboxGateway | undefined;

export const TEST_WEBHOOK_SECRET = 'whsec_test_run';

/** The run's sandbox payment gateway (a real HTTP service with its own state). */
export function testSandboxGateway(): SandboxGateway {
  if (!sandbox) throw new Error('the sandbox gateway is not running: run the tests through mocha with .mocharc.json');
  return sandbox;
}

/** The run's loopback SMTP server: every email the tests cause lands here. */
export function testSmtpSink(): SmtpSink {
  if (!sink) throw new Error('the SMTP sink is not running: run the tests through mocha with .mocharc.json');
  return sink;
}
let tmp: string | undefined;

export async function mochaGlobalSetup(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger((process.env.TEST_LOG_LEVEL as 'WARN' | undefined) ?? 'ERROR') });
  let url = process.env.TEST_DATABASE_URL;
  if (!url) {
    process.stdout.write('  starting embedded PostgreSQL for the tests…\n');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-test-'));
    fs.chmodSync(tmp, 0o755);
    pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), database: 'closeloop_test' });
    url = pg.url;
  }
  const db = createDb(url);
  try {
    await migrateLatest(db);
  } finally {
    await db.destroy();
  }
  process.env.CLOSELOOP_TEST_DATABASE_URL = url;
  sink = await startSmtpSink({ port: 0 });
  sandbox = await startSandboxGateway({ port: 0, webhookSecret: TEST_WEBHOOK_SECRET, timeoutDelayMs: 1_500, chargebackAfterMs: 500 });
}

/**
 * After every test, anywhere in the run: every ledger transaction sums to zero and receivables
 * equal the invoices behind them.
 */
export const mochaHooks = {
  async afterEach(this: Mocha.Context): Promise<void> {
    const url = process.env.CLOSELOOP_TEST_DATABASE_URL;
    if (!url) return;
    ledgerDb ??= createDb(url, { poolMax: 2 });
    const check = await checkLedger(ledgerDb);
    if (check.unbalanced.length || check.receivablesMismatches.length) {
      throw new Error(`ledger check failed after "${this.currentTest?.fullTitle()}": ${JSON.stringify(check)}`);
    }
  },
};
let ledgerDb: Db | undefined;

export async function mochaGlobalTeardown(): Promise<void> {
  await ledgerDb?.destroy();
  await sink?.stop();
  await sandbox?.stop();
  await pg?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
