import assert from 'node:assert/strict';
import { openCustomerDispute } from '../../data/disputes';
import { customerWorkflowId } from '../../domain/ids';
import { disputeWorkflow } from '../../workflows/dispute';
import { disputeWorkflowId } from '../../workflows/shared';
import { seedPlans } from '../support/fixtures';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Disputes over HTTP against the dev server, the real worker and PostgreSQL: what a client may
 * dispute (each refusal names its field and writes nothing), idempotent opening, reading, and an
 * operator's decision carried out by the dispute workflow.
 */
describe('disputes over HTTP (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let brand: { id: string; key: string };
  let other: { id: string; key: string };
  let customerId: string;
  let invoiceId: string;

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    brand = await stack.brand();
    other = await stack.brand();
    await seedPlans(stack.db, brand.id);
    customerId = uniqueId('cus');
    // A declining card keeps the opening invoice (USD 49.00, one recurring line) open.
    const created = await stack.call('POST', '/v1/customers', {
      key: brand.key,
      body: { id: customerId, email: `${customerId}@example.com`, plan: 'pro', paymentMethod: 'tok_hard_decline' },
    });
    assert.equal(created.status, 201, created.text);
    invoiceId = await eventually(async () => {
      const res = await stack.call('GET', `/v1/customers/${customerId}/invoices`, { key: brand.key });
      return res.status === 200 && res.json.data[0]?.id;
    }, 20_000);
  });

  after(async () => {
    await stack?.stop();
  });

  const fields = (res: { json: any }): string[] => [...new Set<string>((res.json?.error?.details ?? []).map((d: { field: string }) => d.field))].sort();
  const open = (body: unknown, opts: { key?: string; customer?: string; idempotencyKey?: string } = {}) =>
    stack.call('POST', `/v1/customers/${opts.customer ?? customerId}/disputes`, {
      key: opts.key ?? brand.key,
      body,
      headers: opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : {},
    });
  const disputeCount = async () => (await stack.db('disputes').where({ brand_id: brand.id, customer_id: customerId }).select('id')).length;

  it('refuses bad disputes with a 4xx naming the field, writing nothing', async () => {
    const before = await disputeCount();
    const cases: Array<[unknown, number, string[], { customer?: string; key?: string }?]> = [
      [{ invoiceId, line: 1 }, 400, ['body.reason']],
      [{ invoiceId, reason: 'x', extra: true }, 400, ['body.extra']],
      [{ invoiceId: 'inv_nope', reason: 'x' }, 400, ['body.invoiceId']],
      [{ invoiceId, line: 0, reason: 'x' }, 400, ['body.line']],
      [{ invoiceId, amount: '0.00', reason: 'x' }, 400, ['body.amount']],
      [{ invoiceId, amount: '-1', reason: 'x' }, 400, ['body.amount']],
      [{ invoiceId, amount: '1.234', reason: 'x' }, 400, ['body.amount']],
      [{ invoiceId, line: 99, reason: 'x' }, 422, ['body.line']],
      [{ invoiceId, line: 1, amount: '49.01', reason: 'x' }, 422, ['body.amount']],
      [{ invoiceId: 'inv_0123456789abcdef0123456789abcdef', reason: 'x' }, 422, ['body.invoiceId']],
      [{ invoiceId, reason: 'x' }, 404, ['params.id'], { customer: uniqueId('nobody') }],
      [{ invoiceId, reason: 'x' }, 404, ['params.id'], { key: other.key }],
    ];
    for (const [body, status, expected, opts] of cases) {
      const res = await open(body, opts);
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${res.text}`);
      assert.deepEqual(fields(res), expected, JSON.stringify(body));
    }
    const tooMuch = await open({ invoiceId, line: 1, amount: '49.01', reason: 'x' });
    assert.equal(tooMuch.json.error.code, 'EXCEEDS_DISPUTABLE');
    assert.match(tooMuch.json.error.message, /USD 49\.00/);
    assert.equal(await disputeCount(), before);
  });

  it('opens a dispute once per Idempotency-Key, answers 202 with its Location, and lists and reads it', async () => {
    const key = uniqueId('idem');
    const first = await open({ invoiceId, line: 1, amount: '1.50', reason: 'the service was down' }, { idempotencyKey: key });
    assert.equal(first.status, 202, first.text);
    assert.match(first.json.id, /^dsp_[0-9a-f]{32}$/);
    assert.equal(first.headers.get('location'), `/v1/disputes/${first.json.id}`);
    assert.deepEqual(first.json.amount, { amount: '1.50', currency: 'USD', minor: 150 });
    assert.equal(first.json.kind, 'customer');
    assert.equal(first.json.line, 1);

    const again = await open({ invoiceId, line: 1, amount: '1.50', reason: 'the service was down' }, { idempotencyKey: key });
    assert.equal(again.status, 202);
    assert.equal(again.json.id, first.json.id);
    const reused = await open({ invoiceId, line: 1, amount: '2.00', reason: 'the service was down' }, { idempotencyKey: key });
    assert.equal(reused.status, 409);
    assert.equal(reused.json.error.code, 'IDEMPOTENCY_KEY_REUSED');
    assert.deepEqual(fields(reused), ['header.idempotency-key']);

    // The customer workflow starts the dispute's own workflow, which escalates 1.50 (above the 0.50 handling cost).
    assert.ok(await eventually(() => stack.workflowExists(disputeWorkflowId(brand.id, first.json.id)), 20_000));
    const escalated = await eventually(async () => {
      const res = await stack.call('GET', `/v1/disputes/${first.json.id}`, { key: brand.key });
      return res.json.status === 'escalated' && res;
    }, 20_000);
    assert.equal(escalated.json.autoDecision, 'above_handling_cost');
    assert.equal(escalated.json.evidence.line.kind, 'recurring');

    const read = await stack.call('GET', `/v1/disputes/${first.json.id}`, { key: brand.key });
    assert.equal(read.status, 200);
    assert.equal(read.json.reason, 'the service was down');
    assert.equal((await stack.call('GET', `/v1/disputes/${first.json.id}`, { key: other.key })).status, 404);
    const listed = await stack.call('GET', `/v1/customers/${customerId}/disputes`, { key: brand.key });
    assert.equal(listed.status, 200);
    assert.ok(listed.json.data.some((d: { id: string }) => d.id === first.json.id));

    // What is under dispute cannot be disputed again.
    const rest = await open({ invoiceId, line: 1, amount: '47.51', reason: 'all of it' });
    assert.equal(rest.status, 422);
    assert.deepEqual(fields(rest), ['body.amount']);
  });

  it('carries out an operator decision on an escalated dispute, and refuses one that is not awaited', async () => {
    // Opened beside the API so no customer workflow starts its own run of the same dispute.
    const { dispute } = await openCustomerDispute(stack.db, { brandId: brand.id, customerId, invoiceId, line: 1, amountMinor: 1000, reason: 'charged twice' });
    const decide = (body: unknown, id = dispute.id) => stack.call('POST', `/v1/disputes/${id}/decision`, { key: brand.key, body });

    const early = await decide({ decision: 'accept' });
    assert.equal(early.status, 409);
    assert.equal(early.json.error.code, 'NOT_AWAITING_DECISION');

    await stack.env.client.workflow.start(disputeWorkflow, {
      workflowId: disputeWorkflowId(brand.id, dispute.id),
      taskQueue: stack.taskQueue,
      args: [{ brandId: brand.id, customerId, disputeId: dispute.id, recipient: `${customerId}@example.com`, period: null, parentWorkflowId: customerWorkflowId(brand.id, customerId) }],
    });
    await eventually(async () => (await stack.call('GET', `/v1/disputes/${dispute.id}`, { key: brand.key })).json.status === 'escalated', 20_000);

    const tooMuch = await decide({ decision: 'accept', amount: '10.01' });
    assert.equal(tooMuch.status, 422);
    assert.deepEqual(fields(tooMuch), ['body.amount']);
    const rejectWithAmount = await decide({ decision: 'reject', amount: '1.00' });
    assert.equal(rejectWithAmount.status, 400);
    assert.deepEqual(fields(rejectWithAmount), ['body.amount']);
    assert.equal((await decide({ decision: 'maybe' })).status, 400);

    const decided = await decide({ decision: 'accept', amount: '4.00', note: 'partial goodwill' });
    assert.equal(decided.status, 200, decided.text);
    assert.equal(decided.json.status, 'resolved');
    assert.equal(decided.json.outcome, 'credited');
    assert.equal(decided.json.resolution, 'operator');
    assert.deepEqual(decided.json.credited, { amount: '4.00', currency: 'USD', minor: 400 });
    assert.deepEqual(decided.json.decision, { decision: 'accept', amount: { amount: '4.00', currency: 'USD', minor: 400 }, note: 'partial goodwill' });
    const note = await stack.call('GET', decided.json.links.creditNote, { key: brand.key });
    assert.equal(note.status, 200);
    assert.equal(note.json.kind, 'credit_note');

    const twice = await decide({ decision: 'reject' });
    assert.equal(twice.status, 409);
    assert.equal(twice.json.error.code, 'NOT_AWAITING_DECISION');
  });
});
