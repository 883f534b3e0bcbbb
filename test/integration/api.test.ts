import assert from 'node:assert/strict';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import { createApiKey } from '../../api/auth';
import { listen } from '../../api/server';
import { createActivities } from '../../activities';
import { customerWorkflowId } from '../../domain/ids';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { createLogger } from '../../infra/logger';
import { devServerEnvironment, testDb, uniqueId, workflowBundle } from '../support/helpers';

/**
 * The API as a client app uses it: real HTTP, the Temporal dev server, the real worker bundle
 * and activities, PostgreSQL.
 */
describe('HTTP API on the dev server (integration)', function () {
  this.timeout(60_000);
  let env: TestWorkflowEnvironment;
  let db: Db;
  let worker: Worker;
  let workerRun: Promise<void>;
  let server: Awaited<ReturnType<typeof listen>>;
  let keyA: string;
  let keyB: string;
  const brandA = uniqueId('itest-a').toLowerCase().slice(0, 40);
  const brandB = uniqueId('itest-b').toLowerCase().slice(0, 40);
  const taskQueue = uniqueId('api-tq');

  before(async function () {
    this.timeout(180_000);
    [env] = await Promise.all([devServerEnvironment(), workflowBundle()]);
    db = testDb();
    await ensureBrand(db, { id: brandA, name: 'Brand A', currency: 'USD', mode: 'sandbox' });
    await ensureBrand(db, { id: brandB, name: 'Brand B', currency: 'EUR', mode: 'sandbox' });
    keyA = await createApiKey(db, brandA, 'integration');
    keyB = await createApiKey(db, brandB, 'integration');
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: createActivities({ db }),
    });
    workerRun = worker.run();
    const app = createApp({
      temporal: env.client,
      db,
      logger: createLogger('silent'),
      config: { taskQueue },
      defaultMetrics: false,
    });
    server = await listen(app, 0, '127.0.0.1');
  });

  after(async () => {
    await server?.close();
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    await workerRun;
    await db?.destroy();
    await env?.teardown();
  });

  async function call(method: string, path: string, opts: { key?: string | null; body?: unknown; raw?: string } = {}) {
    const headers: Record<string, string> = {};
    const key = opts.key === undefined ? keyA : opts.key;
    if (key) headers.authorization = `Bearer ${key}`;
    let body: string | undefined;
    if (opts.raw !== undefined || opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = opts.raw ?? JSON.stringify(opts.body);
    }
    const res = await fetch(`${server.url}${path}`, { method, headers, body });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text, headers: res.headers };
  }

  async function workflowExists(workflowId: string): Promise<boolean> {
    try {
      await env.client.workflow.getHandle(workflowId).describe();
      return true;
    } catch (err) {
      if ((err as Error).name === 'WorkflowNotFoundError') return false;
      throw err;
    }
  }

  it('creates a customer, reads it back, and a repeat of the same request is the same customer', async () => {
    const id = uniqueId('cus');
    const created = await call('POST', '/v1/customers', { body: { id, email: 'ada@example.com', name: 'Ada' } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.get('location'), `/v1/customers/${id}`);
    assert.equal(created.json.id, id);
    assert.equal(created.json.brand, brandA);
    assert.equal(created.json.stage, 'active');
    assert.equal(created.json.currentPeriod.number, 1);

    const again = await call('POST', '/v1/customers', { body: { id, email: 'ada@example.com', name: 'Ada' } });
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.signedUpAt, created.json.signedUpAt, 'the same customer, not a second one');

    const read = await call('GET', `/v1/customers/${id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.json, created.json);

    const workflowId = customerWorkflowId(brandA, id);
    const { runId, status, searchAttributes } = await env.client.workflow.getHandle(workflowId).describe();
    assert.equal(status.name, 'RUNNING');
    assert.ok(runId);
    assert.deepEqual(searchAttributes.CustomerId, [id]);
    assert.deepEqual(searchAttributes.BrandId, [brandA]);
    assert.deepEqual(searchAttributes.CustomerStage, ['active']);

    // Visibility is eventually consistent; within a few seconds exactly one run is listed.
    let count = 0;
    for (let i = 0; i < 50 && count === 0; i += 1) {
      ({ count } = await env.client.workflow.count(`CustomerId = "${id}" AND BrandId = "${brandA}"`));
      if (count === 0) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(count, 1);
    // The workflow's activity registered the customer in PostgreSQL once.
    for (let i = 0; i < 50; i += 1) {
      if (await db('customers').where({ brand_id: brandA, id }).first()) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await db('customers').where({ brand_id: brandA, id })).length, 1);
  });

  it('rejects a second sign-up with the same id but different details (409), changing nothing', async () => {
    const id = uniqueId('cus');
    assert.equal((await call('POST', '/v1/customers', { body: { id, email: 'grace@example.com' } })).status, 201);
    const conflict = await call('POST', '/v1/customers', { body: { id, email: 'mallory@example.com' } });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.json.error.code, 'CUSTOMER_EXISTS');
    assert.equal(conflict.json.error.details[0].field, 'body.email');
    assert.equal((await call('GET', `/v1/customers/${id}`)).json.email, 'grace@example.com');
  });

  it('answers a bad request with 400 naming the field, and writes nothing', async () => {
    const id = uniqueId('cus');
    const bad = await call('POST', '/v1/customers', { body: { id, email: 'not-an-email', plan: 42 } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json.error.code, 'VALIDATION_FAILED');
    const fields = bad.json.error.details.map((d: { field: string }) => d.field).sort();
    assert.deepEqual(fields, ['body.email', 'body.plan']);
    assert.match(bad.json.error.message, /body\.email/);
    assert.equal(await workflowExists(customerWorkflowId(brandA, id)), false, 'no workflow was started');
    assert.equal(await db('customers').where({ id }).first(), undefined, 'no row was written');

    const badJson = await call('POST', '/v1/customers', { raw: '{"id": "x",' });
    assert.equal(badJson.status, 400);
    assert.equal(badJson.json.error.code, 'INVALID_JSON');

    const badId = await call('GET', '/v1/customers/has%20space');
    assert.equal(badId.status, 400);
    assert.equal(badId.json.error.details[0].field, 'params.id');
  });

  it('answers a missing or wrong API key with 401, and writes nothing', async () => {
    const id = uniqueId('cus');
    const missing = await call('POST', '/v1/customers', { key: null, body: { id, email: 'eve@example.com' } });
    assert.equal(missing.status, 401);
    assert.equal(missing.json.error.code, 'UNAUTHORIZED');
    const wrong = await call('POST', '/v1/customers', { key: 'cl_test_not-a-real-key', body: { id, email: 'eve@example.com' } });
    assert.equal(wrong.status, 401);
    const malformed = await fetch(`${server.url}/v1/customers/${id}`, { headers: { authorization: 'Basic abc' } });
    assert.equal(malformed.status, 401);
    assert.equal(await workflowExists(customerWorkflowId(brandA, id)), false);
    assert.equal(await db('customers').where({ id }).first(), undefined);
  });

  it("never shows one brand's customer to another brand's key", async () => {
    const id = uniqueId('cus');
    assert.equal((await call('POST', '/v1/customers', { body: { id, email: 'a@example.com' } })).status, 201);
    const other = await call('GET', `/v1/customers/${id}`, { key: keyB });
    assert.equal(other.status, 404);
    // Brand B may use the same customer id for its own, separate customer.
    const own = await call('POST', '/v1/customers', { key: keyB, body: { id, email: 'b@example.com' } });
    assert.equal(own.status, 201);
    assert.equal(own.json.brand, brandB);
    assert.equal((await call('GET', `/v1/customers/${id}`)).json.email, 'a@example.com');
  });

  it('serves health, readiness, metrics and the OpenAPI document without a key', async () => {
    assert.equal((await call('GET', '/healthz', { key: null })).status, 200);
    const ready = await call('GET', '/readyz', { key: null });
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(ready.json.checks, { database: { ok: true }, temporal: { ok: true } });
    const metrics = await call('GET', '/metrics', { key: null });
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /closeloop_http_requests_total\{method="POST",route="\/v1\/customers",status="201"\}/);
    assert.match(metrics.text, /route="\/v1\/customers",status="400"/);
    const doc = await call('GET', '/v1/openapi.json', { key: null });
    assert.equal(doc.status, 200);
    assert.ok(doc.json.paths['/v1/customers'].post);
    assert.ok(doc.json.paths['/v1/customers/{id}'].get);
    assert.deepEqual(doc.json.components.schemas.CreateCustomer.required.sort(), ['email', 'id']);
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await call('GET', '/nope', { key: null });
    assert.equal(res.status, 404);
    assert.equal(res.json.error.code, 'NOT_FOUND');
  });
});
