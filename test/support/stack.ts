/**
 * The whole stack for integration tests: Temporal dev server, the real worker (bundle and
 * activities) on PostgreSQL, and the API on a loopback port. One per suite.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import { createApiKey } from '../../api/auth';
import { listen } from '../../api/server';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { ensureBrand, NewBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { createLogger } from '../../infra/logger';
import { TEST_WEBHOOK_SECRET, testSandboxGateway } from './global';
import { devServerEnvironment, TEST_LINK_SECRET, testActivities, testDb, uniqueId, workflowBundle } from './helpers';

export interface Stack {
  env: TestWorkflowEnvironment;
  db: Db;
  url: string;
  taskQueue: string;
  /** Creates a brand with a unique id and returns it with an API key. */
  brand(opts?: Partial<Omit<NewBrand, 'id'>>): Promise<{ id: string; key: string }>;
  call(method: string, path: string, opts: { key?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<CallResult>;
  workflowExists(workflowId: string): Promise<boolean>;
  stop(): Promise<void>;
}

export interface CallResult {
  status: number;
  json: any;
  text: string;
  headers: Headers;
}

export async function startStack(opts: { activities?: (db: Db) => object } = {}): Promise<Stack> {
  const [env, bundle] = await Promise.all([devServerEnvironment(), workflowBundle()]);
  const db = testDb();
  const taskQueue = uniqueId('tq');
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities: opts.activities ? opts.activities(db) : testActivities(db),
  });
  const workerRun = worker.run();
  // The API speaks to the run's sandbox gateway too: refunds, and verifying the webhooks it sends.
  const gateway = createSandboxGateway({ baseUrl: testSandboxGateway().url, webhookSecret: TEST_WEBHOOK_SECRET, timeoutMs: 5_000 });
  const app = createApp({ temporal: env.client, db, logger: createLogger('silent'), config: { taskQueue }, defaultMetrics: false, gateway, linkSecret: TEST_LINK_SECRET });
  const server = await listen(app, 0, '127.0.0.1');

  const stack: Stack = {
    env,
    db,
    url: server.url,
    taskQueue,
    async brand(b = {}) {
      const id = uniqueId('b').toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
      await ensureBrand(db, { id, name: b.name ?? `Brand ${id}`, currency: b.currency ?? 'USD', mode: b.mode ?? 'sandbox' });
      return { id, key: await createApiKey(db, id, 'test') };
    },
    async call(method, path, o) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.key) headers.authorization = `Bearer ${o.key}`;
      let body: string | undefined;
      if (o.raw !== undefined || o.body !== undefined) {
        headers['content-type'] = 'application/json';
        body = o.raw ?? JSON.stringify(o.body);
      }
      const res = await fetch(`${server.url}${path}`, { method, headers, body });
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      return { status: res.status, json, text, headers: res.headers };
    },
    async workflowExists(workflowId) {
      try {
        await env.client.workflow.getHandle(workflowId).describe();
        return true;
      } catch (err) {
        if ((err as Error).name === 'WorkflowNotFoundError') return false;
        throw err;
      }
    },
    async stop() {
      await server.close();
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await workerRun;
      await db.destroy();
      await env.teardown();
    },
  };
  return stack;
}

/** Polls `check` until it returns a truthy value (visibility and activities are asynchronous). */
export async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
