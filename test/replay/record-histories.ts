/**
 * Records the histories the replay test checks (`npm run record-histories`): real runs of the
 * customer workflow on the time-skipping server, one per path worth guarding — a lead that
 * expires, a customer activated and billed over two periods, one taken through dunning, one that
 * upgrades, schedules a downgrade and cancels, a micro-dispute credited automatically, a message
 * delivered, and a day's reconciliation.
 * A history already recorded is kept (recorded by older code, it proves the `patched()` paths
 * still replay); RECORD_OVERWRITE=1 records every one again (see docs/workflow-changes.md).
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
import { openCustomerDispute } from '../../data/disputes';
import {
  activateUpdate,
  cancelUpdate,
  changePlanUpdate,
  communicationWorkflowId,
  disputeOpenedSignal,
  disputeWorkflowId,
  updatePaymentMethodUpdate,
  usageThresholdSignal,
} from '../../workflows/shared';
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
      await setPolicy(db, brand, 'communication', { quietHours: null, defaultTimeZone: 'UTC', optOutAllowed: ['marketing', 'usage', 'nurture', 'upgrade_offers'] });
      const taskQueue = uniqueId('tq');
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities: testActivities(db) });
      // RECORD_SUFFIX=-<patch> records every path again under new names, next to the histories
      // of older code (which keep the old branches covered).
      const save = async (path_: string, workflowId: string, runId?: string) => {
        const name = `${path_}${process.env.RECORD_SUFFIX ?? ''}`;
        if (fs.existsSync(path.join(OUT, `${name}.binpb`)) && process.env.RECORD_OVERWRITE !== '1') return;
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
        // 1,100 calls: 100 above the allowance at 0.0004 = a 0.04 line to dispute below.
        await db('usage_events').insert({ brand_id: brand, customer_id: meteredId, event_id: 'calls', metric: 'api_calls', quantity: '1100', occurred_at: new Date(await env.currentTimeMs()).toISOString() });
        await env.sleep(32 * DAY);
        await save('customer-activated-billed', metered.workflowId, metered.firstExecutionRunId);
        await save('communication-welcome', communicationWorkflowId(brand, `welcome:${meteredId}`));

        // A 0.04 line disputed: credited at once by the dispute workflow.
        const periodInvoice = await db('invoices').where({ brand_id: brand, customer_id: meteredId, billing_key: 'period:1' }).first('id');
        const line = await db('invoice_lines').where({ invoice_id: periodInvoice.id, metric: 'api_calls' }).first('position');
        const { dispute } = await openCustomerDispute(db, { brandId: brand, customerId: meteredId, invoiceId: periodInvoice.id, line: line.position, reason: 'did not make these calls' });
        await metered.signal(disputeOpenedSignal, { disputeId: dispute.id });
        for (let i = 0; i < 100; i += 1) {
          const row = await db('disputes').where({ id: dispute.id }).first('status');
          if (row?.status === 'resolved') break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await env.client.workflow.getHandle(disputeWorkflowId(brand, dispute.id)).result();
        await save('dispute-auto-credited', disputeWorkflowId(brand, dispute.id));

        // An upgrade now, a downgrade scheduled, then cancelled now: the workflow ends.
        const changingId = uniqueId('cus');
        const changing = await env.client.workflow.start(customerWorkflow, {
          workflowId: customerWorkflowId(brand, changingId),
          taskQueue,
          args: [{ brandId: brand, customerId: changingId, email: 'c@example.com' }],
        });
        await changing.executeUpdate(activateUpdate, { args: [{ plan: 'starter', paymentMethod: 'tok_visa', credential: testCredential() }] });
        await env.sleep(10 * DAY);
        await changing.executeUpdate(changePlanUpdate, { args: [{ plan: 'pro' }] });
        await changing.executeUpdate(changePlanUpdate, { args: [{ plan: 'starter' }] });
        await env.sleep(DAY);
        await changing.executeUpdate(cancelUpdate, { args: [{ when: 'now', reason: 'recording' }] });
        await changing.result();
        await save('customer-plan-changed-cancelled', changing.workflowId);

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
