/**
 * The dispute workflow: one run per dispute (`dispute-<brand>:<id>`), a child of the customer
 * workflow that outlives it if need be. A dispute cheaper than handling it is credited at once
 * (the abuse cap permitting); otherwise evidence decides, or an operator does before the
 * policy's deadline, after which the policy's default applies. A chargeback is answered with
 * evidence at the gateway before its deadline and ends with the gateway's verdict. At the end the
 * customer is told and the customer workflow is signalled.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { createDisputeActivities } from '../activities/disputes';
import {
  autoCreditPeriodKey,
  decideByEvidence,
  decisionCreditMinor,
  decisionProblem,
  DisputeDecision,
  DisputeErrorTypes,
  DisputeResolution,
} from '../domain/disputes';
import { formatMinor } from '../domain/money';
import { addDuration, parseIsoDuration } from '../domain/period';
import { chargebackClosedSignal, disputeDecisionUpdate, DisputeWorkflowState, getDisputeQuery } from './dispute-shared';
import { MessagesInFlight, tell } from './notify';
import { DisputeOutcome, DisputeResolved, disputeResolvedSignal, DisputeWorkflowInput, OperatorDecision } from './shared';

export { chargebackClosedSignal, disputeDecisionUpdate, getDisputeQuery } from './dispute-shared';
export type { ChargebackClosed, DisputeWorkflowState } from './dispute-shared';

type Activities = ReturnType<typeof createDisputeActivities>;

const NON_RETRYABLE = [
  ...Object.values(DisputeErrorTypes),
  'INVOICE_NOT_FOUND',
  'NOT_CREDITABLE',
  'IDEMPOTENCY_KEY_REUSED',
  'NOT_A_CHARGEBACK',
  'GATEWAY_REQUEST_REJECTED',
];

const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** How long after the evidence deadline the gateway's verdict is awaited; silence is taken as lost. */
const GATEWAY_VERDICT_WAIT = 'P75D';

interface Settled {
  outcome: DisputeOutcome;
  resolution: DisputeResolution;
  decision?: DisputeDecision;
}

const msUntil = (iso: string) => Math.max(0, Date.parse(iso) - Date.now());
const after = (duration: string) => addDuration(new Date(Date.now()), parseIsoDuration(duration)).toISOString();
const nowIso = () => new Date(Date.now()).toISOString();

export async function disputeWorkflow(input: DisputeWorkflowInput): Promise<DisputeResolved> {
  if (!input?.brandId || !input.disputeId || !input.parentWorkflowId) {
    throw ApplicationFailure.nonRetryable('brandId, disputeId and parentWorkflowId are required', 'INVALID_INPUT');
  }
  const { brandId, disputeId } = input;
  const state: DisputeWorkflowState = {
    disputeId,
    kind: null,
    status: 'open',
    amountMinor: 0,
    currency: null,
    autoDecision: null,
    rule: null,
    decisionDeadline: null,
    evidenceDueBy: null,
    evidenceSubmitted: false,
    decision: null,
    resolution: null,
    outcome: null,
    creditedMinor: 0,
    creditNoteId: null,
  };
  let operatorDecision: OperatorDecision | undefined;
  /** Set once the deadline has passed: a late decision is refused rather than silently ignored. */
  let decisionClosed = false;
  let gatewayVerdict: 'won' | 'lost' | undefined;

  setHandler(getDisputeQuery, () => state);
  setHandler(
    disputeDecisionUpdate,
    async (decision: OperatorDecision) => {
      operatorDecision = decision;
      await condition(() => state.status === 'resolved');
      return state;
    },
    {
      validator: (decision: OperatorDecision) => {
        if (operatorDecision) throw new Error(`${DisputeErrorTypes.ALREADY_DECIDED}: an operator already decided this dispute`);
        if (state.status !== 'escalated' || decisionClosed) {
          throw new Error(`${DisputeErrorTypes.NOT_AWAITING_DECISION}: the dispute is ${state.status === 'escalated' ? 'past its decision deadline' : state.status}`);
        }
        const problem = decisionProblem(decision ?? ({} as OperatorDecision), state.amountMinor);
        if (problem) throw new Error(`${problem.type}: ${problem.message}`);
      },
    },
  );
  setHandler(chargebackClosedSignal, ({ outcome }) => {
    if (outcome === 'won' || outcome === 'lost') gatewayVerdict ??= outcome;
  });

  const ctx = await bookkeeping.loadDisputeContext({ brandId, disputeId });
  const { dispute } = ctx;
  Object.assign(state, {
    kind: dispute.kind,
    amountMinor: dispute.amountMinor,
    currency: dispute.currency,
    evidenceDueBy: dispute.evidenceDueBy,
  });
  const money = (minor: number) => ({ minor, currency: dispute.currency, amount: formatMinor(BigInt(minor), dispute.currency) });
  const message = (template: string, key: string, data: Record<string, unknown>) =>
    tell({
      brandId,
      customerId: dispute.customerId,
      dedupeKey: `dispute:${disputeId}:${key}`,
      category: 'transactional',
      template,
      recipient: input.recipient,
      data: { disputeId, invoiceId: dispute.invoiceId, line: dispute.linePosition, disputed: money(dispute.amountMinor), reason: dispute.reason, ...data },
    });

  async function credit(amountMinor: number): Promise<DisputeOutcome> {
    if (amountMinor <= 0) return 'rejected';
    const credited = await bookkeeping.creditDispute({ brandId, disputeId, amountMinor, at: nowIso() });
    state.creditedMinor = credited.creditedMinor;
    state.creditNoteId = credited.creditNoteId;
    return credited.creditedMinor > 0 ? 'credited' : 'rejected';
  }

  /** A person decides, until the policy's deadline; then its default applies. */
  async function escalate(rule: string): Promise<Settled> {
    state.rule = rule;
    const deadline = after(ctx.policy.operatorDecisionDeadline);
    // Open to a decision before the database says escalated, so an operator who reads that never
    // finds the workflow not yet listening (a decision arriving meanwhile is simply kept).
    state.decisionDeadline = deadline;
    state.status = 'escalated';
    await bookkeeping.markDisputeEscalated({ brandId, disputeId, decisionDeadline: deadline });
    await message('dispute-escalated', 'escalated', { decisionDeadline: deadline });
    const decided = await condition(() => operatorDecision !== undefined, msUntil(deadline));
    decisionClosed = true;
    const decision: DisputeDecision =
      decided && operatorDecision
        ? operatorDecision
        : { decision: ctx.policy.defaultDecision, note: `no decision by ${deadline}: the policy's default applied` };
    state.decision = decision;
    return { outcome: await credit(decisionCreditMinor(decision, dispute.amountMinor)), resolution: decided ? 'operator' : 'default', decision };
  }

  async function customerDispute(): Promise<Settled> {
    const auto = await bookkeeping.decideDisputeAutomatically({ brandId, disputeId, periodKey: autoCreditPeriodKey(input.period), figures: ctx.figures });
    state.autoDecision = auto.action === 'auto_credit' ? 'auto_credit' : auto.reason;
    if (auto.action === 'auto_credit') return { outcome: await credit(dispute.amountMinor), resolution: 'auto' };
    state.status = 'evidence_gathering';
    const evidence = await bookkeeping.gatherDisputeEvidence({ brandId, disputeId, at: nowIso() });
    const byEvidence = decideByEvidence(evidence);
    if (byEvidence.action === 'credit') {
      state.rule = byEvidence.rule;
      return { outcome: await credit(dispute.amountMinor), resolution: 'rule' };
    }
    return escalate(byEvidence.rule);
  }

  /** Evidence goes to the gateway before its deadline; the gateway's verdict ends the dispute. */
  async function chargeback(): Promise<Settled> {
    state.status = 'evidence_gathering';
    await bookkeeping.markDisputeGatheringEvidence({ brandId, disputeId });
    await bookkeeping.gatherDisputeEvidence({ brandId, disputeId, at: nowIso() });
    const dueBy = dispute.evidenceDueBy ?? nowIso();
    const window = msUntil(dueBy);
    if (window > 0) {
      // A gateway outage is retried until the deadline, after which evidence is pointless.
      const submitting = proxyActivities<Activities>({
        startToCloseTimeout: '1 minute',
        scheduleToCloseTimeout: window,
        retry: { initialInterval: '5 seconds', maximumInterval: '10 minutes', nonRetryableErrorTypes: NON_RETRYABLE },
      });
      try {
        await submitting.submitChargebackEvidence({ brandId, disputeId, at: nowIso() });
        state.evidenceSubmitted = true;
      } catch (err) {
        log.warn('chargeback evidence could not be submitted before its deadline', { disputeId, error: (err as Error).message });
      }
    }
    if (!state.evidenceSubmitted) return { outcome: 'lost', resolution: 'gateway' };
    state.status = 'awaiting_gateway';
    const waitUntil = addDuration(new Date(Math.max(Date.parse(dueBy), Date.now())), parseIsoDuration(GATEWAY_VERDICT_WAIT)).toISOString();
    await condition(() => gatewayVerdict !== undefined, msUntil(waitUntil));
    return { outcome: gatewayVerdict ?? 'lost', resolution: 'gateway' };
  }

  let settled: Settled;
  if (dispute.status === 'resolved' && dispute.outcome && dispute.resolution) {
    // A rerun of a finished dispute (e.g. a reset): report what was recorded, do nothing twice.
    settled = { outcome: dispute.outcome, resolution: dispute.resolution, ...(dispute.decision ? { decision: dispute.decision } : {}) };
    state.creditedMinor = dispute.creditedMinor;
    state.creditNoteId = dispute.creditNoteId;
  } else {
    settled = dispute.kind === 'chargeback' ? await chargeback() : await customerDispute();
    await bookkeeping.recordDisputeOutcome({ brandId, disputeId, ...settled, at: nowIso() });
  }
  Object.assign(state, { status: 'resolved', outcome: settled.outcome, resolution: settled.resolution, decision: settled.decision ?? state.decision });

  const told = await message('dispute-resolved', 'resolved', { outcome: settled.outcome, resolution: settled.resolution, credited: money(state.creditedMinor), creditNoteId: state.creditNoteId });
  const resolved: DisputeResolved = { disputeId, outcome: settled.outcome, creditedMinor: state.creditedMinor };
  try {
    await getExternalWorkflowHandle(input.parentWorkflowId).signal(disputeResolvedSignal, resolved);
  } catch (err) {
    // The customer workflow may have ended (cancelled customer); the dispute's outcome stands.
    log.warn('could not signal the customer workflow that the dispute is resolved', { disputeId, parent: input.parentWorkflowId, error: (err as Error).message });
  }
  await condition(allHandlersFinished);
  // The last message is sent before the dispute's story ends (as the customer workflow does with its
  // messages; it also keeps the time-skipping test server's clock moving, temporalio/sdk-java#1540).
  const messages = new MessagesInFlight();
  messages.track(told);
  await messages.delivered('24 hours');
  return resolved;
}
