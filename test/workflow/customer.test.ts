import assert from 'node:assert/strict';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import type { Db } from '../../infra/db';
import { ensureBrand } from '../../infra/brands';
import { customerWorkflowId } from '../../domain/ids';
import { customerWorkflow } from '../../workflows/customer';
import { getCustomerQuery } from '../../workflows/shared';
import { testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const DAY = 24 * 60 * 60 * 1000;
const BRAND = 'wf-test';

describe('customer workflow (time-skipping server, real bundle, real PostgreSQL)', function () {
  this.timeout(120_000);
  let env: TestWorkflowEnvironment;
  let db: Db;

  before(async function () {
    this.timeout(180_000);
    [env] = await Promise.all([timeSkippingEnvironment(), workflowBundle()]);
    db = testDb();
    await ensureBrand(db, { id: BRAND, name: 'Workflow tests', currency: 'USD', mode: 'sandbox' });
  });

  // Time skipping is global: a leftover workflow whose worker is gone would hold time still
  // for the next test (the server waits for its workflow tasks), so each test ends its own.
  const started: string[] = [];
  afterEach(async () => {
    for (const id of started.splice(0)) {
      await env.client.workflow.getHandle(id).terminate('test finished').catch(() => undefined);
    }
  });

  after(async () => {
    await db?.destroy();
    await env?.teardown();
  });

  async function worker(taskQueue: string): Promise<Worker> {
    return Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: createActivities({ db }),
    });
  }

  it('sleeps a simulated 30 days in seconds and rolls into the next billing period', async () => {
    const customerId = uniqueId('cus');
    const taskQueue = uniqueId('tq');
    const workflowId = customerWorkflowId(BRAND, customerId);
    started.push(workflowId);
    const w = await worker(taskQueue);
    await w.runUntil(async () => {
      const handle = await env.client.workflow.start(customerWorkflow, {
        workflowId,
        taskQueue,
        args: [{ brandId: BRAND, customerId, email: 'ada@example.com', billingPeriod: 'P30D' }],
      });
      const first = await handle.query(getCustomerQuery);
      assert.equal(first.currentPeriod.number, 1);
      assert.equal(Date.parse(first.currentPeriod.end) - Date.parse(first.currentPeriod.start), 30 * DAY);

      const realStart = Date.now();
      await env.sleep('30 days');
      await env.sleep('1 minute');
      const realElapsed = Date.now() - realStart;

      const latest = env.client.workflow.getHandle(workflowId);
      const after = await latest.query(getCustomerQuery);
      assert.equal(after.currentPeriod.number, 2);
      assert.equal(after.currentPeriod.start, first.currentPeriod.end, 'periods tile with no gap');
      assert.equal(after.signedUpAt, first.signedUpAt, 'the billing anchor survives continue-as-new');
      const { runId } = await latest.describe();
      assert.notEqual(runId, handle.firstExecutionRunId, 'the new period runs in a fresh history');
      assert.ok(realElapsed < 30 * DAY, 'time was skipped, not waited');
    });
    const row = await db('customers').where({ brand_id: BRAND, id: customerId }).first();
    assert.equal(row?.email, 'ada@example.com');
    assert.equal(row?.workflow_id, workflowId);
  });

  it('keeps every period in a bounded history across a simulated year', async () => {
    const customerId = uniqueId('cus');
    const taskQueue = uniqueId('tq');
    const workflowId = customerWorkflowId(BRAND, customerId);
    started.push(workflowId);
    const w = await worker(taskQueue);
    await w.runUntil(async () => {
      await env.client.workflow.start(customerWorkflow, {
        workflowId,
        taskQueue,
        args: [{ brandId: BRAND, customerId, email: 'grace@example.com' }],
      });
      // Month by month, as a year would pass; the server skips each timer.
      for (let month = 0; month < 12; month += 1) await env.sleep(31 * DAY);
      const handle = env.client.workflow.getHandle(workflowId);
      const state = await handle.query(getCustomerQuery);
      assert.equal(state.currentPeriod.number, 13);
      const history = await handle.fetchHistory();
      assert.ok((history.events?.length ?? 0) < 20, `one period's run has a short history, got ${history.events?.length}`);
    });
    const rows = await db('customers').where({ brand_id: BRAND, id: customerId });
    assert.equal(rows.length, 1, 'registered once, not once per period');
  });
});
