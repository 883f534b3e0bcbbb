/**
 * Records the histories the replay test checks (`npm run record-histories`): real runs of the
 * customer workflow on the time-skipping server, one per path worth guarding — a lead that
 * expires, a customer activated and billed over two periods, one taken through dunning, and a
 * day's reconciliation.
 * Record again only for a deliberate, `patched()`-guarded change (see docs/workflow-changes.md).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { customerWorkflowId } from '../../domain/ids';
import { ensureBrand } from '../../infra/brands';
import { customerWorkflow } from '../../workflows/customer';
import { reconciliationWorkflow } from '../../workflows/reconciliation';
import { activateUpdate, updatePaymentMethodUpdate, usageThresholdSignal } from '../../workflows/shared';
import { seedMeteredPlan, seedPlans, setPolicy } from '../support/fixtures';
import { testActivities, testCredential, testDb, timeSkippingEnvironment, uniqueId, workflowBundle } from '../support/helpers';

const DAY = 24 * 60 * 60 * 1000;
const OUT = path.resolve(__dirname, '../../../test/replay/histories');

describe('record replay histories', function () {
  this.timeout(300_000);

  it('records the customer workflow paths', async () => {
    const db = testDb();
    const env = await timeSkippingEnvironment();
    try {
      const brand = uniqueId('rec').toLowerCase().slice(0, 40);
      await ensureBrand(db, { id: brand, name: 'Replay', currency: 'USD', mode: 'sandbox' });
      await seedPlans(db, brand);
      await seedMeteredPlan(db, brand);
      await setPolicy(db, brand, 'acquisition', { nurture: [{ after: 'P1D', template: 'nurture-welcome' }], leadExpiresAfter: 'P3D' });
      await setPolicy(db, brand, 'dunning', { retrySchedule: ['P1D'], gracePeriod: 'P1D', writeOffAfter: 'P10D' });
      const taskQueue = uniqueId('tq');
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
      const save = async (name: string, workflowId: string, runId?: string) => {
        const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
        fs.mkdirSync(OUT, { recursive: true });
        // Binary protobuf: exact, and independent of JSON mapping details between SDK versions.
        fs.writeFileSync(path.join(OUT, `${name}.binpb`), temporal.api.history.v1.History.encode(history).finish());
      };
      await worker.runUntil(async () => {
        // A lead nurtured, then expired.
        const leadId = uniqueId('lead');
        await db('leads').insert({ brand_id: brand, id: leadId, email: 'l@example.com', source: 'ads', campaign: 'x' });
        const lead = await env.client.workflow.start(customerWorkflow, {
          workflowId: customerWorkflowId(brand, leadId),
          taskQueue,
          args: [{ brandId: brand, customerId: leadId, email: 'l@example.com', lead: { source: 'ads', campaign: 'x', attributes: {} } }],
        });
        await lead.result();
        await save('customer-lead-expired', lead.workflowId);

        // Activated on a metered plan, a threshold signal, the first period closed and billed.
        const meteredId = uniqueId('cus');
        const metered = await env.client.workflow.start(customerWorkflow, {
          workflowId: customerWorkflowId(brand, meteredId),
          taskQueue,
          args: [{ brandId: brand, customerId: meteredId, email: 'm@example.com' }],
        });
        await metered.executeUpdate(activateUpdate, { args: [{ plan: 'metered', paymentMethod: 'tok_visa', credential: testCredential() }] });
        await metered.signal(usageThresholdSignal, { metric: 'api_calls', threshold: 80, quantity: '800', included: '1000', at: new Date().toISOString() });
        await env.sleep(32 * DAY);
        await save('customer-activated-billed', metered.workflowId, metered.firstExecutionRunId);

        // A hard decline, dunning, and a new payment method that pays.
        const dunningId = uniqueId('cus');
        const dunning = await env.client.workflow.start(customerWorkflow, {
          workflowId: customerWorkflowId(brand, dunningId),
          taskQueue,
          args: [{ brandId: brand, customerId: dunningId, email: 'd@example.com' }],
        });
        await dunning.executeUpdate(activateUpdate, { args: [{ plan: 'pro', paymentMethod: `tok_hard_decline_${crypto.randomBytes(4).toString("hex")}`, credential: testCredential() }] });
        await env.sleep(2 * DAY + 60_000);
        await dunning.executeUpdate(updatePaymentMethodUpdate, { args: [{ paymentMethod: 'tok_visa' }] });
        await save('customer-dunning-recovered', dunning.workflowId);

        // A day's reconciliation over the payments above.
        const recon = await env.client.workflow.start(reconciliationWorkflow, {
          workflowId: uniqueId('reconciliation'),
          taskQueue,
          args: [{ brandId: brand, gateway: 'sandbox', reportDate: new Date(await env.currentTimeMs()).toISOString().slice(0, 10) }],
        });
        await recon.result();
        await save('reconciliation-day', recon.workflowId);
      });
    } finally {
      await env.teardown();
      await db.destroy();
    }
  });
});
