import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Client } from '@temporalio/client';
import { createSandboxGateway } from '../../gateway/sandbox-client';
import { reconciliationScheduleId, ensureReconciliationSchedules } from '../../workers/schedules';
import { reconciliationWorkflow } from '../../workflows/reconciliation';
import { TEST_WEBHOOK_SECRET, testSandboxGateway } from '../support/global';
import { uniqueId } from '../support/helpers';
import { Stack, startStack } from '../support/stack';

/**
 * Reconciliation results over HTTP and the daily schedules, on the dev server with the real
 * worker, PostgreSQL and the run's sandbox gateway: a brand reads its own runs and items, never
 * another brand's.
 */
describe('reconciliation runs over HTTP and their schedules (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let other: { id: string; key: string };
  let runId: string;
  let unrecordedCharge: string;
  const today = new Date().toISOString().slice(0, 10);

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    a = await stack.brand({ name: 'Acme Cloud' });
    other = await stack.brand();
    // A charge the gateway made for brand A that A never recorded: missing on our side.
    const gateway = createSandboxGateway({ baseUrl: testSandboxGateway().url, webhookSecret: TEST_WEBHOOK_SECRET, timeoutMs: 5_000 });
    const charge = await gateway.charge({
      amountMinor: 1234,
      currency: 'USD',
      paymentMethod: 'tok_visa',
      idempotencyKey: crypto.randomUUID(),
      metadata: { brandId: a.id, customerId: 'cus_ghost', invoiceId: 'inv_ghost' },
    });
    unrecordedCharge = charge.paymentId!;
    const result = await stack.env.client.workflow.execute(reconciliationWorkflow, {
      workflowId: uniqueId('reconciliation'),
      taskQueue: stack.taskQueue,
      args: [{ brandId: a.id, gateway: 'sandbox', reportDate: today }],
    });
    runId = result.runId;
  });

  after(async () => {
    await stack?.stop();
  });

  const get = (path: string, key: string | null = a.key) => stack.call('GET', path, { key });
  const fields = (res: { json: any }): string[] => [...new Set<string>((res.json?.error?.details ?? []).map((d: { field: string }) => d.field))].sort();

  it("lists the brand's runs, newest first, with their counts", async () => {
    const res = await get('/v1/reconciliation/runs');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.data.length, 1);
    const [run] = res.json.data;
    assert.equal(run.id, runId);
    assert.equal(run.reportDate, today);
    assert.equal(run.gateway, 'sandbox');
    assert.equal(run.status, 'completed');
    assert.equal(run.counts.missing_ours, 1 + run.counts.unclaimedLines);
    assert.equal(run.mismatches, run.counts.missing_ours);
    assert.equal(run.links.self, `/v1/reconciliation/runs/${runId}`);
    assert.deepEqual((await get('/v1/reconciliation/runs', other.key)).json, { data: [] }, 'another brand sees none of them');
  });

  it('shows one run with every item and its payout net of fees', async () => {
    const res = await get(`/v1/reconciliation/runs/${runId}`);
    assert.equal(res.status, 200, res.text);
    const item = res.json.items.find((i: any) => i.report?.lineId === unrecordedCharge);
    assert.equal(item.kind, 'missing_ours');
    assert.equal(item.ours, null);
    assert.deepEqual(item.report.amount, { amount: '12.34', currency: 'USD', minor: 1234 });
    assert.equal(item.report.fee.minor, 66);
    assert.deepEqual(
      res.json.payouts.map((p: any) => [p.currency, p.gross.minor, p.fees.minor, p.net.minor]),
      [['USD', 1234, 66, 1168]],
    );
  });

  it("answers 404 for another brand's run and 400 naming the field for a malformed id", async () => {
    const res = await get(`/v1/reconciliation/runs/${runId}`, other.key);
    assert.equal(res.status, 404);
    assert.equal(res.json.error.code, 'NOT_FOUND');
    assert.equal((await get(`/v1/reconciliation/runs/rr_${'0'.repeat(32)}`)).status, 404);
    const bad = await get('/v1/reconciliation/runs/not-a-run');
    assert.equal(bad.status, 400);
    assert.deepEqual(fields(bad), ['params.id']);
    const limit = await get('/v1/reconciliation/runs?limit=0');
    assert.equal(limit.status, 400);
    assert.deepEqual(fields(limit), ['query.limit']);
    assert.equal((await get('/v1/reconciliation/runs', null)).status, 401);
  });

  it('describes both endpoints in the OpenAPI document', async () => {
    const doc = await get('/v1/openapi.json', null);
    assert.ok(doc.json.paths['/v1/reconciliation/runs'].get);
    assert.ok(doc.json.paths['/v1/reconciliation/runs/{id}'].get);
    assert.ok(doc.json.components.schemas.ReconciliationRun);
  });

  it('keeps one daily 02:00 UTC schedule per brand and gateway, however often the worker starts', async () => {
    // Over the worker's native connection, as `npm run worker` does it.
    const client = new Client({ connection: stack.env.nativeConnection, namespace: 'default' });
    const opts = { taskQueue: stack.taskQueue, brands: [a.id, other.id], gateway: 'sandbox' };
    const ids = [reconciliationScheduleId(a.id, 'sandbox'), reconciliationScheduleId(other.id, 'sandbox')];
    try {
      assert.deepEqual(await ensureReconciliationSchedules(client, opts), { created: ids, updated: [] });
      assert.deepEqual(await ensureReconciliationSchedules(client, opts), { created: [], updated: ids });
      const schedule = await client.schedule.getHandle(ids[0]!).describe();
      assert.equal(schedule.policies.overlap, 'SKIP');
      assert.deepEqual(
        schedule.spec.calendars?.map((c) => [c.hour, c.minute]),
        [[[{ start: 2, end: 2, step: 1 }], [{ start: 0, end: 0, step: 1 }]]],
      );
      assert.equal(schedule.action.type, 'startWorkflow');
      assert.equal(schedule.action.type === 'startWorkflow' && schedule.action.workflowType, 'reconciliationWorkflow');
      assert.deepEqual(schedule.action.type === 'startWorkflow' && schedule.action.args, [{ brandId: a.id, gateway: 'sandbox' }]);
    } finally {
      for (const id of ids) await client.schedule.getHandle(id).delete().catch(() => undefined);
    }
  });
});
