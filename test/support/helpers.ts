import crypto from 'node:crypto';
/** Shared test wiring: the test database, the real workflow bundle, real Temporal servers. */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Activities, createActivities } from '../../activities';
import { createDb, Db } from '../../infra/db';
import { createMailer } from '../../infra/mailer';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { TEST_WEBHOOK_SECRET, testSandboxGateway, testSmtpSink } from './global';
import { ensureSearchAttributes } from '../../infra/search-attributes';
import { locateBinary, sdkExecutable, TEMPORAL_CLI, TEMPORAL_TEST_SERVER } from '../../infra/temporal-binaries';
import { WORKFLOWS_PATH } from '../../workers/worker';
import { SEARCH_ATTRIBUTE_KEYS } from '../../workflows/shared';

export function testDb(): Db {
  const url = process.env.CLOSELOOP_TEST_DATABASE_URL;
  if (!url) throw new Error('CLOSELOOP_TEST_DATABASE_URL is not set: run the tests through mocha with .mocharc.json');
  return createDb(url, { poolMax: 5 });
}

/** Signs invoice links in the tests; the stack's API verifies with the same one. */
export const TEST_LINK_SECRET = 'test-link-signing-secret-0123456789abcdef';

/** Real activities on the test database, mailing the run's loopback SMTP sink, charging its sandbox gateway. */
export function testActivities(db: Db): Activities {
  const sink = testSmtpSink();
  return createActivities({
    db,
    mailer: createMailer({ host: sink.host, port: sink.port, from: 'billing@closeloop.test' }),
    publicUrl: 'http://127.0.0.1:3000',
    gateway: createSandboxGateway({ baseUrl: testSandboxGateway().url, webhookSecret: TEST_WEBHOOK_SECRET, timeoutMs: 1_000 }),
    linkSecret: TEST_LINK_SECRET,
  });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The same bundle the worker runs in production, built once per test run. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
  return bundle;
}

const noop = () => undefined;
const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };

export async function timeSkippingEnvironment(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: sdkExecutable(locateBinary(TEMPORAL_TEST_SERVER)) },
  });
  await ensureSearchAttributes(env.connection, env.namespace ?? 'default');
  return env;
}

export function devServerEnvironment(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: sdkExecutable(locateBinary(TEMPORAL_CLI)),
      searchAttributes: SEARCH_ATTRIBUTE_KEYS,
    },
  });
}

let counter = 0;
/** Unique per test run and call, so tests never see each other's customers. */
/** A rejected or failed update, by the error type it carries (validator rejections prefix it). */
export function failedWith(type: string) {
  return (err: unknown) => {
    const cause = (err as { cause?: { type?: string; message?: string } }).cause;
    return cause?.type === type || (cause?.message ?? '').startsWith(`${type}:`);
  };
}

export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${process.pid.toString(36)}-${counter}`;
}

/** A service credential as the API makes one for an activation: only its hash reaches Temporal. */
export function testCredential(): { hash: string; prefix: string } {
  const secret = crypto.randomBytes(16).toString('hex');
  return { hash: crypto.createHash('sha256').update(secret).digest('hex'), prefix: secret.slice(0, 8) };
}
