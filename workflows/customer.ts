/**
 * The customer workflow: one long-lived run per customer (`customer-<brand>:<id>`) that carries
 * them through the stages lead → active (→ past_due → suspended) → cancelled, or lead_expired.
 * It continues-as-new at every billing-period boundary (and when the SDK suggests it), carrying
 * its state, so history stays bounded over years.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  currentUpdateInfo,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities, InvoiceSummary } from '../activities';
import type { DraftLine } from '../domain/invoice';
import { addDuration, billingPeriod, BillingPeriod, parseIsoDuration } from '../domain/period';
import { cancellationProration, changeDirection, FeeTerms, planChangeProration } from '../domain/plan-change';
import { DisputeErrorTypes } from '../domain/disputes';
import { MessagesInFlight, tell } from './notify';
import {
  CancelRequest,
  CommunicationRequest,
  CancelResult,
  cancelUpdate,
  changePlanUpdate,
  disputeOpenedSignal,
  disputeResolvedSignal,
  DisputeWorkflowInput,
  disputeWorkflowId,
  MessageCategory,
  PlanChangeRecord,
  PlanChangeRequest,
  PlanChangeResult,
  PlanSnapshot,
  requestPlanChangeSignal,
  withdrawPlanChangeUpdate,
  ActivateInput,
  activateUpdate,
  ActivationError,
  PaymentMethodResult,
  updatePaymentMethodUpdate,
  ActivationResult,
  CustomerStage,
  CustomerState,
  CustomerWorkflowInput,
  ErrorTypes,
  getCustomerQuery,
  PAYMENT_TOKEN,
  SA,
  Subscription,
  UsageThresholdCrossed,
  usageThresholdSignal,
  ChargebackNotice,
  chargebackSignal,
  OpenChargeback,
} from './shared';

type Activities = ReturnType<typeof createActivities>;

const NON_RETRYABLE = [...Object.values(ErrorTypes), ...Object.values(DisputeErrorTypes), 'INVOICE_NOT_FOUND', 'NOT_CREDITABLE'];

const bookkeeping = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});

/**
 * Provisioning steps give up after a few attempts so a broken step is compensated and reported
 * to the caller instead of holding the activation open forever.
 */
const provisioning = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Compensations must finish: they retry until they do. */
const compensating = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** Workflow changes guarded for replay (docs/workflow-changes.md). */
const PATCHES = {
  /** Messages go through a communicationWorkflow child instead of the outbox activity. */
  communication: 'communication-workflow',
  /** A period close may suggest a bigger plan. */
  upgradeOffers: 'upgrade-offers',
  /** A chargeback opens a dispute workflow instead of only telling the customer. */
  chargebackDisputes: 'chargeback-disputes',
  /**
   * A message child is started without waiting for the server to confirm the start (the invoice
   * email no longer holds up the charge). Asked once, first thing in every run, and implies the
   * three above: every patched() call costs a marker and a TemporalChangeVersion upsert.
   */
  messagesNotAwaited: 'messages-not-awaited',
} as const;

const PLAN_CODE = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const PLAN_CHANGE_HISTORY_LIMIT = 10;
/**
 * How long a run waits for its messages before it continues as new without them: long enough for
 * a message waiting out a night's quiet hours; billing is done by then and handlers keep working.
 */
const MESSAGE_WAIT_BEFORE_NEW_RUN = '24 hours';
const STAGE_HISTORY_LIMIT = 20;
const INVOICE_HISTORY_LIMIT = 12;
const USAGE_ALERT_LIMIT = 50;

function nowIso(): string {
  return new Date(Date.now()).toISOString();
}

function initialState(input: CustomerWorkflowInput): CustomerState {
  const createdAt = new Date(workflowInfo().startTime).toISOString();
  return {
    brandId: input.brandId,
    customerId: input.customerId,
    email: input.email,
    name: input.name ?? null,
    stage: 'lead',
    createdAt,
    lead: input.lead ? { ...input.lead, capturedAt: createdAt, expiresAt: null, nurtureSent: 0 } : null,
    subscription: null,
    entitlements: null,
    currentPeriod: null,
    balanceMinor: 0,
    billing: { openingInvoiced: false, chargeAttempts: 0, invoices: [] },
    paymentMethod: null,
    dunning: null,
    dunningState: 'none',
    usageAlerts: [],
    chargebacks: [],
    lastActivationError: null,
    stageHistory: [{ stage: 'lead', at: createdAt }],
    planChanges: { scheduled: null, history: [] },
    cancellation: null,
    openDisputes: [],
  };
}

function feeTerms(sub: Subscription): FeeTerms {
  return { planCode: sub.planCode, planName: sub.planName, listPriceMinor: sub.listPriceMinor, discountPercent: sub.discountPercent, discountPeriods: sub.discountPeriods };
}

/** The subscription after a change: same id and period anchor, the new plan at its list price. */
function subscriptionOn(from: Subscription, to: PlanSnapshot): Subscription {
  return {
    ...from,
    planCode: to.code,
    planVersion: to.version,
    planName: to.name,
    listPriceMinor: to.recurringFeeMinor,
    discountPercent: 0,
    discountPeriods: null,
    offerRule: null,
  };
}

function invoiceBrief(i: InvoiceSummary) {
  return { invoiceId: i.invoiceId, number: i.number, currency: i.currency, totalMinor: i.totalMinor, amountDueMinor: i.amountDueMinor };
}

export async function customerWorkflow(input: CustomerWorkflowInput): Promise<void> {
  if (!input.brandId || !input.customerId || !input.email) {
    throw ApplicationFailure.nonRetryable('brandId, customerId and email are required', ErrorTypes.INVALID_INPUT);
  }
  // One patch per run (docs/workflow-changes.md): runs started on this code take every change
  // below; histories from before replay through the patches they recorded where they recorded them.
  const latest = patched(PATCHES.messagesNotAwaited);
  const has = (patch: string) => latest || patched(patch);
  const firstRun = !input.carried;
  const state: CustomerState = input.carried ?? initialState(input);
  // States carried from runs that predate plan changes, cancellation and disputes.
  const planChanges = (state.planChanges ??= { scheduled: null, history: [] });
  state.cancellation ??= null;
  const openDisputes = () => (state.openDisputes ??= []);
  let activating = false;
  /** Bumped by handlers whose news the main loop must act on (wakes its wait). */
  let events = 0;

  setHandler(getCustomerQuery, () => state);

  const publishSearchAttributes = () =>
    upsertSearchAttributes([
      { key: SA.customerId, value: state.customerId },
      { key: SA.brandId, value: state.brandId },
      { key: SA.stage, value: state.stage },
      { key: SA.dunningState, value: state.dunningState },
      ...(state.subscription ? [{ key: SA.plan, value: state.subscription.planCode }] : []),
    ]);

  const register = () =>
    bookkeeping.registerCustomer({
      brandId: state.brandId,
      customerId: state.customerId,
      email: state.email,
      name: state.name,
      stage: state.stage,
      workflowId: workflowInfo().workflowId,
    });

  /** After a cancellation the stage stays cancelled; dunning shows in the dunning state. */
  async function moveUnlessCancelled(stage: CustomerStage): Promise<void> {
    if (state.cancellation?.done) publishSearchAttributes();
    else await moveTo(stage);
  }

  async function moveTo(stage: CustomerStage): Promise<void> {
    state.stage = stage;
    state.stageHistory = [...state.stageHistory, { stage, at: nowIso() }].slice(-STAGE_HISTORY_LIMIT);
    publishSearchAttributes();
    await register();
  }

  setHandler(
    activateUpdate,
    async (req: ActivateInput): Promise<ActivationResult> => {
      activating = true;
      try {
        return await activate(req);
      } finally {
        activating = false;
      }
    },
    {
      // Runs before the update is written to history: a rejection leaves no trace and no change.
      validator: (req: ActivateInput) => {
        if (state.stage === 'active' || state.stage === 'past_due' || state.stage === 'suspended') {
          throw new Error(`${ErrorTypes.ALREADY_ACTIVE}: customer is already ${state.stage}`);
        }
        if (state.stage !== 'lead') throw new Error(`${ErrorTypes.NOT_A_LEAD}: customer is ${state.stage}`);
        if (activating) throw new Error(`${ErrorTypes.ACTIVATION_IN_PROGRESS}: an activation is already running`);
        if (typeof req?.paymentMethod !== 'string' || !PAYMENT_TOKEN.test(req.paymentMethod)) {
          throw new Error(`${ErrorTypes.INVALID_PAYMENT_METHOD}: paymentMethod must be a gateway token such as "tok_visa"`);
        }
        if (!req.credential?.hash || !req.credential.prefix) throw new Error(`${ErrorTypes.INVALID_INPUT}: credential is required`);
      },
    },
  );

  // Messages decided by signal handlers, sent by the main loop (handlers do no I/O).
  const outbox: Message[] = [];

  // Usage itself never comes through signals; only an allowance threshold crossing does. The
  // API may report a crossing twice: it is told to the customer once per period.
  setHandler(usageThresholdSignal, (crossing: UsageThresholdCrossed) => {
    const period = crossing.periodNumber ?? state.currentPeriod?.number ?? 0;
    const key = `${period}:${crossing.metric}:${crossing.threshold}`;
    if (state.stage === 'lead' || state.usageAlerts.includes(key)) return;
    state.usageAlerts = [...state.usageAlerts, key].slice(-USAGE_ALERT_LIMIT);
    outbox.push({
      category: 'usage',
      dedupeKey: `usage:${state.customerId}:${key}`,
      template: crossing.threshold >= 100 ? 'usage-allowance-used' : 'usage-allowance-80',
      data: { metric: crossing.metric, threshold: crossing.threshold, quantity: crossing.quantity, included: crossing.included },
    });
  });

  // A chargeback reported by the gateway (at least once): recorded once; the main loop opens
  // its dispute (which gathers and submits evidence and tells the customer).
  const chargebacksToOpen: OpenChargeback[] = [];
  setHandler(chargebackSignal, (notice: ChargebackNotice) => {
    if (state.chargebacks.some((c) => c.chargebackId === notice.chargebackId)) return;
    const { eventId: _eventId, gatewayPaymentId: _gatewayPaymentId, ...chargeback } = notice;
    const received = { ...chargeback, receivedAt: nowIso() };
    state.chargebacks = [...state.chargebacks, received];
    chargebacksToOpen.push(received);
    events += 1;
  });

  let balanceStale = false;
  let changingPlan = false;
  const messages = new MessagesInFlight();
  registerPlanChangeHandlers();
  registerCancelHandler();
  // Disputes the API recorded: each gets its own dispute workflow, started by the main loop.
  const disputesToStart: string[] = [];
  setHandler(disputeOpenedSignal, ({ disputeId }) => {
    if (typeof disputeId !== 'string' || state.stage === 'lead' || state.stage === 'lead_expired') return;
    if (openDisputes().includes(disputeId) || disputesToStart.includes(disputeId)) return;
    disputesToStart.push(disputeId);
    events += 1;
  });
  setHandler(disputeResolvedSignal, ({ disputeId, creditedMinor }) => {
    if (!openDisputes().includes(disputeId)) return;
    state.openDisputes = openDisputes().filter((d) => d !== disputeId);
    // A credit note lowers what the customer owes; collections read the real balance.
    if (creditedMinor > 0) balanceStale = true;
    events += 1;
  });

  let collecting = false;
  setHandler(
    updatePaymentMethodUpdate,
    async ({ paymentMethod }): Promise<PaymentMethodResult> => {
      state.paymentMethod = paymentMethod;
      let collected = false;
      if (state.dunning) {
        const decline = await collectOutstanding();
        if (!decline) {
          // A dunning retry may have ended the episode while this update waited its turn.
          if (state.dunning) await recovered();
          collected = true;
        } else if (state.dunning) {
          state.dunning.lastDecline = { ...decline, at: nowIso() };
        }
        events += 1;
      }
      return { stage: state.stage, dunningState: state.dunningState, collected };
    },
    {
      validator: ({ paymentMethod }) => {
        if (typeof paymentMethod !== 'string' || !PAYMENT_TOKEN.test(paymentMethod)) {
          throw new Error(`${ErrorTypes.INVALID_PAYMENT_METHOD}: paymentMethod must be a gateway token such as "tok_visa"`);
        }
        if (!['active', 'past_due', 'suspended'].includes(state.stage)) {
          throw new Error(`${ErrorTypes.NOT_ACTIVE}: customer is ${state.stage}`);
        }
      },
    },
  );

  async function activate(req: ActivateInput): Promise<ActivationResult> {
    const buyer = {
      ...(state.lead ? { source: state.lead.source, campaign: state.lead.campaign } : {}),
      ...req.buyer,
    };
    const resolved = await provisioning.resolveOffer({ brandId: state.brandId, requestedPlan: req.plan, buyer }).catch((err) => {
      throw updateFailure(recordActivationError(err));
    });
    const { offer } = resolved;
    const startedAt = nowIso();
    const provisioningId = uuid4();
    const step = { brandId: state.brandId, customerId: state.customerId, provisioningId };
    const subscription: Subscription = {
      id: provisioningId,
      planCode: offer.plan.code,
      planVersion: offer.plan.version,
      planName: offer.plan.name,
      currency: offer.currency,
      listPriceMinor: offer.listPriceMinor,
      discountPercent: offer.discountPercent,
      discountPeriods: offer.discountPeriods,
      offerRule: offer.rule,
      billingPeriod: resolved.billingPeriod,
      startedAt,
    };
    const period = billingPeriod(startedAt, resolved.billingPeriod, 1);

    // The saga: each completed step pushes its undo; a failure runs them in reverse.
    const compensations: Array<() => Promise<void>> = [];
    try {
      await provisioning.createCredential({ ...step, hash: req.credential.hash, prefix: req.credential.prefix });
      compensations.unshift(() => compensating.revokeCredential(step));
      await provisioning.grantEntitlements({ ...step, entitlements: resolved.entitlements });
      compensations.unshift(() => compensating.revokeEntitlements(step));
      await provisioning.createSubscription({ ...step, subscription, periodStart: period.start, periodEnd: period.end });
      compensations.unshift(() => compensating.cancelSubscription(step));
    } catch (err) {
      for (const undo of compensations) await undo();
      const cause = recordActivationError(err);
      state.lastActivationError = { ...cause, type: ErrorTypes.PROVISIONING_FAILED, message: `provisioning failed and was rolled back: ${cause.message}` };
      throw updateFailure(state.lastActivationError);
    }

    state.subscription = subscription;
    state.entitlements = resolved.entitlements;
    state.currentPeriod = period;
    state.lastActivationError = null;
    await moveTo('active');
    if (state.lead) await bookkeeping.recordLeadConverted({ brandId: state.brandId, customerId: state.customerId, at: startedAt });
    // The first period's fee is invoiced in advance and charged at once, so the caller sees
    // the outcome in the result; a decline starts dunning rather than failing the activation.
    state.paymentMethod = req.paymentMethod;
    await bill({ billingKey: 'opening', kind: 'opening', closingPeriod: null, advancePeriod: period });
    state.billing.openingInvoiced = true;
    await collectOrStartDunning();
    await say({ dedupeKey: `welcome:${state.customerId}`, category: 'transactional', template: 'welcome', data: { plan: subscription.planName } });
    return { stage: state.stage, offer, subscription, entitlements: resolved.entitlements, currentPeriod: period };
  }

  /** Keeps the failure visible in the customer's state; activity failures carry the real type in their cause. */
  function recordActivationError(err: unknown): ActivationError {
    const failure = err as { type?: string; message?: string; cause?: { type?: string; message?: string } };
    const source = failure.cause?.type ? failure.cause : failure;
    state.lastActivationError = { type: source.type ?? 'ERROR', message: String(source.message ?? 'activation failed'), at: nowIso() };
    return state.lastActivationError;
  }

  if (firstRun) {
    publishSearchAttributes();
    await register();
  }

  if (state.stage === 'lead') {
    await nurtureUntilConvertedOrExpired(state, () => activating);
    if (state.stage === 'lead') {
      if (workflowInfo().continueAsNewSuggested) return carryOnAfterOutbox();
      // Expired: close the loop on attribution and end this customer's workflow.
      await moveTo('lead_expired');
      if (state.lead) await bookkeeping.recordLeadExpired({ brandId: state.brandId, customerId: state.customerId, at: nowIso() });
      await condition(allHandlersFinished);
      await messagesDelivered();
      return;
    }
  }

  // Active: the fee for the first period was invoiced in advance at activation; at each
  // period's end, usage is rated in arrears together with the next period's fee. Dunning runs
  // on its own schedule in between, carried across runs in the state. After a cancellation the
  // loop bills nothing more and ends once dunning and open disputes are over.
  await condition(() => !activating);
  if (!state.billing.openingInvoiced) {
    await bill({ billingKey: 'opening', kind: 'opening', closingPeriod: null, advancePeriod: state.currentPeriod! });
    state.billing.openingInvoiced = true;
    await collectOrStartDunning();
  }
  for (;;) {
    await handleNews();
    const ended = state.stage === 'cancelled';
    if (ended && !dunningPending() && openDisputes().length === 0 && !newsPending()) break;
    const period = state.currentPeriod!;
    const periodEndAt = ended ? Infinity : Date.parse(period.end);
    const wakeAt = Math.min(periodEndAt, nextDunningStep()?.at ?? Infinity);
    if (wakeAt > Date.now()) {
      const seen = events;
      const woken = () => workflowInfo().continueAsNewSuggested || events !== seen || outbox.length > 0;
      if (wakeAt === Infinity) await condition(woken);
      else await condition(woken, wakeAt - Date.now());
      await handleNews();
      await flushOutbox();
      if (workflowInfo().continueAsNewSuggested) return carryOnAfterOutbox();
      continue; // a payment method update, a plan change or a dispute may have changed the schedule
    }
    const step = nextDunningStep();
    if (step && Date.now() >= step.at) {
      await runDunningStep(step.action);
      continue;
    }
    if (Date.now() >= periodEndAt) {
      await closePeriod(period);
      if (state.stage === 'cancelled') continue;
      return carryOnAfterOutbox();
    }
  }
  await condition(allHandlersFinished);
  await flushOutbox();
  await messagesDelivered();
  return;

  function dunningPending(): boolean {
    return state.dunning !== null && state.dunningState !== 'written_off';
  }

  function newsPending(): boolean {
    return chargebacksToOpen.length > 0 || disputesToStart.length > 0 || balanceStale;
  }

  /** Bills the period that ended: usage in arrears, the next fee in advance (or the final invoice). */
  async function closePeriod(period: BillingPeriod): Promise<void> {
    if (state.cancellation && !state.cancellation.done) {
      await endSubscription({ closingPeriod: period, extraLines: [] });
      return;
    }
    const current = state.subscription!;
    const scheduled = planChanges.scheduled;
    const next = billingPeriod(current.startedAt, current.billingPeriod, period.number + 1);
    const nextSubscription = scheduled ? subscriptionOn(current, scheduled.to) : current;
    const invoice = await bill({
      billingKey: `period:${period.number}`,
      kind: 'period',
      closingPeriod: period,
      advancePeriod: next,
      ...(scheduled ? { advanceSubscription: nextSubscription } : {}),
    });
    state.currentPeriod = next;
    if (scheduled) {
      // A downgrade takes effect with the new period: its fee was just billed at the new plan.
      await switchPlan(scheduled.changeId, current, nextSubscription, scheduled.to, 'downgrade', next.start);
      planChanges.scheduled = null;
    }
    // In dunning, the next retry charges this invoice together with the older ones.
    if (!state.dunning) await collectOrStartDunning();
    if (has(PATCHES.upgradeOffers)) await offerUpgrade(current, invoice.invoiceId, period);
  }

  /** When the usage just billed says a bigger plan would serve the customer better, say so (once a period). */
  async function offerUpgrade(sub: Subscription, invoiceId: string, period: BillingPeriod): Promise<void> {
    const suggestion = await bookkeeping.suggestUpgrade({ brandId: state.brandId, planCode: sub.planCode, planVersion: sub.planVersion, invoiceId });
    if (!suggestion) return;
    await say({
      dedupeKey: `upgrade-offer:${state.customerId}:${period.number}`,
      category: 'upgrade_offers',
      template: 'upgrade-offer',
      data: { ...suggestion, currentPlan: sub.planName, currency: sub.currency, period: period.number },
    });
  }

  /** Acts on what signal handlers queued: chargebacks to open, disputes to start, a balance to re-read. */
  async function handleNews(): Promise<void> {
    for (let cb = chargebacksToOpen.shift(); cb; cb = chargebacksToOpen.shift()) {
      if (!has(PATCHES.chargebackDisputes)) {
        outbox.push({
          category: 'transactional',
          dedupeKey: `chargeback:${cb.chargebackId}`,
          template: 'dispute-opened',
          data: { invoiceId: cb.invoiceId, amountMinor: cb.amountMinor, currency: cb.currency, reason: cb.reason },
        });
        continue;
      }
      const { chargebackId, paymentId, invoiceId, amountMinor, currency, reason, evidenceDueBy } = cb;
      try {
        const { disputeId } = await bookkeeping.openChargebackDispute({
          brandId: state.brandId,
          customerId: state.customerId,
          chargeback: { chargebackId, paymentId, invoiceId, amountMinor, currency, reason, evidenceDueBy },
        });
        if (!openDisputes().includes(disputeId) && !disputesToStart.includes(disputeId)) disputesToStart.push(disputeId);
      } catch (err) {
        // A notice naming a payment or invoice we do not have: kept in the state for operators,
        // never a reason to stop billing the customer.
        log.warn('chargeback could not open a dispute', { chargebackId, error: activityError(err) });
      }
    }
    for (let disputeId = disputesToStart.shift(); disputeId; disputeId = disputesToStart.shift()) {
      await startDispute(disputeId);
    }
    if (balanceStale) {
      balanceStale = false;
      await refreshBalance();
    }
  }

  /** One dispute workflow per dispute, ever; it outlives this run and reports back by signal. */
  async function startDispute(disputeId: string): Promise<void> {
    const input: DisputeWorkflowInput = {
      brandId: state.brandId,
      customerId: state.customerId,
      disputeId,
      recipient: state.email,
      period: state.currentPeriod,
      parentWorkflowId: workflowInfo().workflowId,
    };
    try {
      await startChild('disputeWorkflow', {
        workflowId: disputeWorkflowId(state.brandId, disputeId),
        args: [input],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
      });
    } catch (err) {
      // Started before (a redelivered signal): it reports to us when it ends, if it has not yet.
      if (err instanceof WorkflowExecutionAlreadyStartedError) return;
      throw err;
    }
    state.openDisputes = [...openDisputes(), disputeId];
  }

  /** A credit note changed what invoices owe: read their balances back and settle the ones at zero. */
  async function refreshBalance(): Promise<void> {
    const open = state.billing.invoices.filter((i) => !i.settled).map((i) => i.invoiceId);
    if (open.length === 0) return;
    const balances = await bookkeeping.invoiceBalances({ brandId: state.brandId, invoiceIds: open });
    let owed = 0;
    for (const ref of state.billing.invoices) {
      if (ref.settled) continue;
      const due = balances[ref.invoiceId] ?? 0;
      if (due <= 0) ref.settled = true;
      else owed += due;
    }
    state.balanceMinor = owed;
    if (state.dunning && !state.billing.invoices.some((i) => !i.settled)) await recovered();
  }

  // ---- plan changes ------------------------------------------------------------------------

  /** Why a plan change cannot start now, or null. Runs in validators: no I/O, no state change. */
  function planChangeProblem(req: PlanChangeRequest): { type: string; message: string } | null {
    if (typeof req?.plan !== 'string' || !PLAN_CODE.test(req.plan)) return { type: ErrorTypes.INVALID_INPUT, message: 'plan must be a plan code such as "pro"' };
    if (req.when !== undefined && req.when !== 'now' && req.when !== 'period_end') {
      return { type: ErrorTypes.INVALID_INPUT, message: 'when must be "now" or "period_end"' };
    }
    if (req.changeId !== undefined && (typeof req.changeId !== 'string' || !/^[A-Za-z0-9_.:-]{1,100}$/.test(req.changeId))) {
      return { type: ErrorTypes.INVALID_INPUT, message: 'changeId must be 1-100 letters, digits, "_", ".", ":" or "-"' };
    }
    if (state.stage !== 'active') return { type: ErrorTypes.NOT_ACTIVE, message: `plans change only for active customers; this one is ${state.stage}` };
    if (state.cancellation) return { type: ErrorTypes.CANCELLATION_PENDING, message: `the subscription ends at ${state.cancellation.effectiveAt}` };
    if (changingPlan) return { type: ErrorTypes.PLAN_CHANGE_IN_PROGRESS, message: 'another plan change is being applied' };
    if (req.plan === state.subscription?.planCode) return { type: ErrorTypes.SAME_PLAN, message: `the customer is already on plan "${req.plan}"` };
    return null;
  }

  function registerPlanChangeHandlers(): void {
    setHandler(
      changePlanUpdate,
      async (req: PlanChangeRequest): Promise<PlanChangeResult> => {
        changingPlan = true;
        try {
          return await changePlan(req, req.changeId ?? currentUpdateInfo()?.id ?? uuid4());
        } finally {
          changingPlan = false;
        }
      },
      {
        validator: (req: PlanChangeRequest) => {
          const problem = planChangeProblem(req);
          if (problem) throw new Error(`${problem.type}: ${problem.message}`);
        },
      },
    );

    // The same change from callers that do not wait: validated here, a rejection kept in the state.
    setHandler(requestPlanChangeSignal, async (req: PlanChangeRequest) => {
      const changeId = typeof req?.changeId === 'string' ? req.changeId : uuid4();
      const problem = planChangeProblem(req);
      if (problem) {
        recordPlanChange({ changeId, direction: null, status: 'rejected', fromPlan: state.subscription?.planCode ?? '', toPlan: String(req?.plan ?? ''), at: nowIso(), reason: problem });
        return;
      }
      changingPlan = true;
      try {
        await changePlan(req, changeId);
      } catch (err) {
        const failure = err as { type?: string; message?: string };
        recordPlanChange({
          changeId,
          direction: null,
          status: 'rejected',
          fromPlan: state.subscription?.planCode ?? '',
          toPlan: req.plan,
          at: nowIso(),
          reason: { type: failure.type ?? 'ERROR', message: String(failure.message ?? 'plan change failed') },
        });
      } finally {
        changingPlan = false;
      }
    });

    setHandler(
      withdrawPlanChangeUpdate,
      async () => {
        const scheduled = planChanges.scheduled!;
        planChanges.scheduled = null;
        recordPlanChange({ changeId: scheduled.changeId, direction: 'downgrade', status: 'withdrawn', fromPlan: state.subscription!.planCode, toPlan: scheduled.to.code, at: nowIso() });
        events += 1;
        return scheduled;
      },
      {
        validator: () => {
          if (!planChanges.scheduled) throw new Error(`${ErrorTypes.NO_SCHEDULED_CHANGE}: no plan change is scheduled`);
        },
      },
    );

  }

  function recordPlanChange(record: PlanChangeRecord): void {
    planChanges.history = [...planChanges.history, record].slice(-PLAN_CHANGE_HISTORY_LIMIT);
  }

  async function changePlan(req: PlanChangeRequest, changeId: string): Promise<PlanChangeResult> {
    const from = state.subscription!;
    const to = await bookkeeping.resolvePlan({ brandId: state.brandId, planCode: req.plan }).catch((err) => {
      throw updateFailure(activityError(err));
    });
    if (to.currency !== from.currency || to.billingPeriod !== from.billingPeriod) {
      throw failure(
        ErrorTypes.INCOMPATIBLE_PLAN,
        `plan "${to.code}" bills ${to.currency} every ${to.billingPeriod}; the subscription bills ${from.currency} every ${from.billingPeriod}`,
      );
    }
    const direction = changeDirection(from.listPriceMinor, to.recurringFeeMinor);
    const when = req.when ?? (direction === 'upgrade' ? 'now' : 'period_end');
    if (direction === 'downgrade' && when === 'now') {
      throw failure(ErrorTypes.DOWNGRADE_AT_PERIOD_END, `"${to.code}" costs less than "${from.planCode}": a downgrade takes effect at the end of the period`);
    }
    // The plan lookup took time: a cancellation or dunning may have begun meanwhile.
    if (state.stage !== 'active') throw failure(ErrorTypes.NOT_ACTIVE, `plans change only for active customers; this one is ${state.stage}`);
    if (state.cancellation) throw failure(ErrorTypes.CANCELLATION_PENDING, `the subscription ends at ${state.cancellation.effectiveAt}`);
    const period = state.currentPeriod!;
    const base = {
      changeId,
      direction,
      from: { planCode: from.planCode, planVersion: from.planVersion },
      to: { planCode: to.code, planVersion: to.version, planName: to.name },
    };

    if (when === 'period_end') {
      planChanges.scheduled = { changeId, requestedAt: nowIso(), effectiveAt: period.end, to };
      recordPlanChange({ changeId, direction, status: 'scheduled', fromPlan: from.planCode, toPlan: to.code, at: nowIso() });
      events += 1;
      await say({
        dedupeKey: `plan-change:${state.customerId}:${changeId}:scheduled`,
        category: 'transactional',
        template: 'plan-change-scheduled',
        data: { fromPlan: from.planName, toPlan: to.name, effectiveAt: period.end },
      });
      return { ...base, status: 'scheduled', effectiveAt: period.end, prorationLines: [], invoice: null, entitlements: state.entitlements! };
    }

    // Now: usage so far is billed at the old prices with the proration, on one invoice.
    const at = nowIso();
    const next = subscriptionOn(from, to);
    const prorationLines = planChangeProration({ from: feeTerms(from), to: feeTerms(next), period, at });
    const invoice = await bill({
      billingKey: `plan-change:${changeId}`,
      kind: 'proration',
      subscription: from,
      closingPeriod: { number: period.number, start: period.start, end: at },
      advancePeriod: null,
      extraLines: prorationLines,
    });
    planChanges.scheduled = null;
    await switchPlan(changeId, from, next, to, direction, at);
    if (!state.dunning) await collectOrStartDunning();
    return { ...base, status: 'applied', effectiveAt: at, prorationLines, invoice: invoiceBrief(invoice), entitlements: to.entitlements };
  }

  /** The subscription, entitlements and search attributes move to the new plan; the customer is told. */
  async function switchPlan(changeId: string, from: Subscription, next: Subscription, to: PlanSnapshot, direction: 'upgrade' | 'downgrade', at: string): Promise<void> {
    await compensating.applyPlanChange({
      brandId: state.brandId,
      customerId: state.customerId,
      provisioningId: from.id,
      subscription: next,
      entitlements: to.entitlements,
    });
    state.subscription = next;
    state.entitlements = to.entitlements;
    publishSearchAttributes();
    recordPlanChange({ changeId, direction, status: 'applied', fromPlan: from.planCode, toPlan: to.code, at });
    await say({
      dedupeKey: `plan-change:${state.customerId}:${changeId}:applied`,
      category: 'transactional',
      template: 'plan-changed',
      data: { fromPlan: from.planName, toPlan: to.name, direction, effectiveAt: at },
    });
  }

  // ---- cancellation ------------------------------------------------------------------------

  function registerCancelHandler(): void {
    setHandler(
      cancelUpdate,
      async (req: CancelRequest): Promise<CancelResult> => {
        const period = state.currentPeriod!;
        const reason = req.reason ?? null;
        if (req.when === 'period_end') {
          state.cancellation = { when: 'period_end', requestedAt: nowIso(), effectiveAt: period.end, reason, done: false };
          planChanges.scheduled = null; // a scheduled downgrade is moot
          events += 1;
          await say({
            dedupeKey: `cancel:${state.customerId}:scheduled`,
            category: 'transactional',
            template: 'cancellation-scheduled',
            data: { effectiveAt: period.end, plan: state.subscription!.planName },
          });
          return { stage: state.stage, cancellation: state.cancellation, prorationLines: [], finalInvoice: null };
        }
        const at = nowIso();
        const prorationLines = cancellationProration({ from: feeTerms(state.subscription!), period, at });
        state.cancellation = { when: 'now', requestedAt: at, effectiveAt: at, reason, done: false };
        const invoice = await endSubscription({ closingPeriod: { number: period.number, start: period.start, end: at }, extraLines: prorationLines });
        return { stage: state.stage, cancellation: state.cancellation, prorationLines, finalInvoice: invoiceBrief(invoice) };
      },
      {
        validator: (req: CancelRequest) => {
          if (req?.when !== 'now' && req?.when !== 'period_end') throw new Error(`${ErrorTypes.INVALID_INPUT}: when must be "now" or "period_end"`);
          if (req.reason !== undefined && (typeof req.reason !== 'string' || req.reason.length > 500)) {
            throw new Error(`${ErrorTypes.INVALID_INPUT}: reason must be text of at most 500 characters`);
          }
          if (!['active', 'past_due', 'suspended'].includes(state.stage)) throw new Error(`${ErrorTypes.NOT_ACTIVE}: customer is ${state.stage}`);
          // Cancelling now may overtake a cancellation scheduled for the period's end.
          if (state.cancellation && !(state.cancellation.when === 'period_end' && req.when === 'now' && !state.cancellation.done)) {
            throw new Error(`${ErrorTypes.CANCELLATION_PENDING}: the subscription already ends at ${state.cancellation.effectiveAt}`);
          }
          if (changingPlan) throw new Error(`${ErrorTypes.PLAN_CHANGE_IN_PROGRESS}: a plan change is being applied`);
        },
      },
    );

  }

  /**
   * Ends the subscription: the final invoice (usage so far, any proration credit), entitlements
   * and subscription withdrawn, the customer told, the final invoice collected (a decline duns
   * as usual; the workflow ends when that is paid or written off and open disputes are over).
   */
  async function endSubscription(what: { closingPeriod: BillingPeriod; extraLines: DraftLine[] }): Promise<InvoiceSummary> {
    const invoice = await bill({ billingKey: 'final', kind: 'final', closingPeriod: what.closingPeriod, advancePeriod: null, extraLines: what.extraLines });
    await compensating.setEntitlementsActive({ brandId: state.brandId, customerId: state.customerId, active: false });
    await compensating.cancelSubscription({ brandId: state.brandId, customerId: state.customerId, provisioningId: state.subscription!.id });
    state.cancellation!.done = true;
    planChanges.scheduled = null;
    await moveTo('cancelled');
    events += 1;
    await say({
      dedupeKey: `cancel:${state.customerId}:done`,
      category: 'transactional',
      template: 'subscription-cancelled',
      data: { plan: state.subscription!.planName, effectiveAt: state.cancellation!.effectiveAt, finalInvoice: invoice.number },
    });
    if (!state.dunning) await collectOrStartDunning();
    return invoice;
  }

  // ---- messages ----------------------------------------------------------------------------

  async function carryOnAfterOutbox(): Promise<never> {
    // Queues live in this run only: what a signal queued during the close is acted on before the next run.
    await handleNews();
    await flushOutbox();
    await messagesDelivered();
    return carryOn(state);
  }

  async function messagesDelivered(): Promise<void> {
    await messages.delivered(MESSAGE_WAIT_BEFORE_NEW_RUN);
  }

  async function flushOutbox(): Promise<void> {
    for (let msg = outbox.shift(); msg; msg = outbox.shift()) await say(msg);
  }

  /** Starts a message child; since 'messages-not-awaited' without waiting for the server to confirm the start. */
  async function startMessage(req: CommunicationRequest): Promise<void> {
    if (latest) messages.send(req);
    else messages.track(await tell(req));
  }

  /** Tells the customer something: by a communication workflow child (older runs: the outbox activity). */
  async function say(msg: Message): Promise<void> {
    if (has(PATCHES.communication)) {
      await startMessage({ brandId: state.brandId, customerId: state.customerId, recipient: state.email, ...msg });
      return;
    }
    await bookkeeping.sendLifecycleMessage({
      brandId: state.brandId,
      customerId: state.customerId,
      recipient: state.email,
      ...msg,
      category: msg.category === 'nurture' ? 'nurture' : 'transactional',
    });
  }

  /**
   * Charges every unsettled invoice; returns the first decline, if any. One collection at a
   * time: a payment-method update arriving during a dunning retry waits for it, then finds the
   * invoices it paid already settled, so nothing is charged twice.
   */
  async function collectOutstanding(): Promise<{ code: string; message: string } | null> {
    await condition(() => !collecting);
    collecting = true;
    try {
      return await chargeUnsettled();
    } finally {
      collecting = false;
    }
  }

  async function chargeUnsettled(): Promise<{ code: string; message: string } | null> {
    for (const ref of state.billing.invoices) {
      if (ref.settled || !state.paymentMethod) continue;
      state.billing.chargeAttempts += 1;
      const result = await bookkeeping.chargeInvoice({
        brandId: state.brandId,
        customerId: state.customerId,
        invoiceId: ref.invoiceId,
        attempt: state.billing.chargeAttempts,
        paymentMethod: state.paymentMethod,
      });
      if (result.outcome === 'declined') return { code: result.declineCode, message: result.message };
      if (result.outcome === 'paid') state.balanceMinor -= result.amountMinor;
      ref.settled = true;
    }
    return null;
  }

  async function collectOrStartDunning(): Promise<void> {
    const decline = await collectOutstanding();
    if (!decline) return;
    const policy = await bookkeeping.getDunningPolicy({ brandId: state.brandId });
    const hard = decline.code === 'hard_decline';
    const at = nowIso();
    state.dunning = {
      startedAt: at,
      policy,
      retriesDone: 0,
      hardDeclined: hard,
      awaitingSince: hard || policy.retrySchedule.length === 0 ? at : null,
      suspended: false,
      lastDecline: { ...decline, at },
    };
    state.dunningState = state.dunning.awaitingSince ? 'awaiting_payment_method' : 'retrying';
    await moveUnlessCancelled('past_due');
    await notify(hard ? 'payment-failed-update-method' : 'payment-failed', { declineCode: decline.code, message: decline.message });
  }

  function nextDunningStep(): { at: number; action: 'retry' | 'suspend' | 'write_off' } | null {
    const d = state.dunning;
    if (!d || state.dunningState === 'written_off') return null;
    const start = new Date(d.startedAt);
    const writeOffAt = addDuration(start, parseIsoDuration(d.policy.writeOffAfter)).getTime();
    if (!d.awaitingSince) {
      const offset = d.policy.retrySchedule[d.retriesDone]!;
      return { at: Math.min(addDuration(start, parseIsoDuration(offset)).getTime(), writeOffAt), action: 'retry' };
    }
    if (!d.suspended) {
      const suspendAt = addDuration(new Date(d.awaitingSince), parseIsoDuration(d.policy.gracePeriod)).getTime();
      return { at: Math.min(suspendAt, writeOffAt), action: 'suspend' };
    }
    return { at: writeOffAt, action: 'write_off' };
  }

  async function runDunningStep(action: 'retry' | 'suspend' | 'write_off'): Promise<void> {
    const d = state.dunning!;
    if (action === 'retry') {
      d.retriesDone += 1;
      const decline = await collectOutstanding();
      if (!decline) return recovered();
      d.lastDecline = { ...decline, at: nowIso() };
      if (decline.code === 'hard_decline') d.hardDeclined = true;
      if (d.hardDeclined || d.retriesDone >= d.policy.retrySchedule.length) {
        d.awaitingSince = nowIso();
        state.dunningState = 'awaiting_payment_method';
        publishSearchAttributes();
      }
      await notify('payment-retry-failed', { attempt: d.retriesDone, declineCode: decline.code, finalRetry: d.awaitingSince !== null });
      return;
    }
    if (action === 'suspend') {
      d.suspended = true;
      state.dunningState = 'suspended';
      await bookkeeping.setEntitlementsActive({ brandId: state.brandId, customerId: state.customerId, active: false });
      await moveUnlessCancelled('suspended');
      await notify('service-suspended', {});
      return;
    }
    // Write-off: what is still owed moves to bad debt and the subscription ends.
    for (const ref of state.billing.invoices) {
      if (ref.settled) continue;
      await bookkeeping.writeOffInvoice({ brandId: state.brandId, customerId: state.customerId, invoiceId: ref.invoiceId });
      ref.settled = true;
    }
    state.balanceMinor = 0;
    state.dunningState = 'written_off';
    await bookkeeping.setEntitlementsActive({ brandId: state.brandId, customerId: state.customerId, active: false });
    await compensating.cancelSubscription({ brandId: state.brandId, customerId: state.customerId, provisioningId: state.subscription!.id });
    if (state.stage !== 'cancelled') await moveTo('cancelled');
    await notify('account-written-off', {});
  }

  async function recovered(): Promise<void> {
    const wasSuspended = state.dunning?.suspended ?? false;
    state.dunning = null;
    state.dunningState = 'none';
    // A cancelled customer who pays the final invoice gets no service back.
    const cancelled = state.cancellation?.done === true;
    if (wasSuspended && !cancelled) await bookkeeping.setEntitlementsActive({ brandId: state.brandId, customerId: state.customerId, active: true });
    await moveUnlessCancelled('active');
    await notify(wasSuspended ? 'service-restored' : 'payment-recovered', {});
  }

  /** Lifecycle messages of dunning, once each per episode and step. */
  async function notify(template: string, data: Record<string, unknown>): Promise<void> {
    const episode = state.dunning?.startedAt ?? state.stageHistory[state.stageHistory.length - 1]!.at;
    const step = state.dunning ? `${state.dunning.retriesDone}` : 'end';
    await say({ dedupeKey: `dunning:${state.customerId}:${episode}:${template}:${step}`, category: 'transactional', template, data });
  }

  /** Finalize (idempotent by billing key), then present; collections take over from here. */
  async function bill(what: Billing): Promise<InvoiceSummary> {
    const { subscription, ...rest } = what;
    const invoice = await bookkeeping.finalizeInvoice({
      brandId: state.brandId,
      customerId: state.customerId,
      issuedAt: nowIso(),
      ...rest,
      subscription: subscription ?? state.subscription!,
    });
    if (!state.billing.invoices.some((i) => i.invoiceId === invoice.invoiceId)) {
      state.balanceMinor += invoice.amountDueMinor;
      state.billing.invoices = [
        ...state.billing.invoices,
        {
          invoiceId: invoice.invoiceId,
          number: invoice.number,
          billingKey: what.billingKey,
          currency: invoice.currency,
          totalMinor: invoice.totalMinor,
          amountDueMinor: invoice.amountDueMinor,
          dueAt: invoice.dueAt,
          settled: invoice.amountDueMinor <= 0,
        },
      ].slice(-INVOICE_HISTORY_LIMIT);
    }
    if (has(PATCHES.communication)) {
      await startMessage({
        brandId: state.brandId,
        customerId: state.customerId,
        recipient: state.email,
        dedupeKey: `invoice-ready:${invoice.invoiceId}`,
        category: 'transactional',
        template: 'invoice-ready',
        data: { invoiceId: invoice.invoiceId, number: invoice.number },
      });
    } else {
      await bookkeeping.presentInvoice({ brandId: state.brandId, invoiceId: invoice.invoiceId });
    }
    return invoice;
  }

  /** Nurtures a lead on durable timers until it converts or its time runs out. */
  async function nurtureUntilConvertedOrExpired(s: CustomerState, isActivating: () => boolean): Promise<void> {
    const policy = await bookkeeping.getAcquisitionPolicy({ brandId: s.brandId });
    const lead = s.lead;
    const capturedAt = new Date(lead?.capturedAt ?? s.createdAt);
    // Fixed when first computed, so a later policy change does not move a lead's deadline.
    const expiresAt = lead?.expiresAt ?? addDuration(capturedAt, parseIsoDuration(policy.leadExpiresAfter)).toISOString();
    if (lead) lead.expiresAt = expiresAt;
    const converted = () => s.stage !== 'lead';
    for (;;) {
      if (converted() || workflowInfo().continueAsNewSuggested) return;
      const next = lead ? policy.nurture[lead.nurtureSent] : undefined;
      const nextAt = next ? addDuration(capturedAt, parseIsoDuration(next.after)).getTime() : Infinity;
      const until = Math.min(nextAt, Date.parse(expiresAt));
      const wait = until - Date.now();
      if (wait > 0) {
        await condition(() => converted() || workflowInfo().continueAsNewSuggested, wait);
        continue;
      }
      // An activation in flight wins over expiry and nurture: let it finish first.
      if (isActivating()) {
        await condition(() => !isActivating());
        continue;
      }
      if (next && lead && nextAt <= Date.parse(expiresAt)) {
        await say({
          dedupeKey: `nurture:${s.customerId}:${lead.nurtureSent}:${next.template}`,
          category: 'nurture',
          template: next.template,
          data: { source: lead.source, campaign: lead.campaign },
        });
        lead.nurtureSent += 1;
        continue;
      }
      return; // expired
    }
  }
}

/** An update handler fails its update (not the workflow) by throwing an ApplicationFailure. */
function updateFailure(e: Pick<ActivationError, 'type' | 'message'>): ApplicationFailure {
  return ApplicationFailure.create({ type: e.type, message: e.message, nonRetryable: true });
}

function failure(type: string, message: string): ApplicationFailure {
  return updateFailure({ type, message });
}

/** An activity's failure as {type, message}: the real type is in its cause. */
function activityError(err: unknown): { type: string; message: string } {
  const f = err as { type?: string; message?: string; cause?: { type?: string; message?: string } };
  const source = f.cause?.type ? f.cause : f;
  return { type: source.type ?? 'ERROR', message: String(source.message ?? 'failed') };
}

/** A message for the customer, before the workflow adds who and whom. */
interface Message {
  dedupeKey: string;
  category: MessageCategory;
  template: string;
  data: Record<string, unknown>;
}

/** What one invoice bills (see data/invoices.ts FinalizeInvoiceInput); the subscription defaults to the current one. */
interface Billing {
  billingKey: string;
  kind: 'opening' | 'period' | 'proration' | 'final';
  closingPeriod: BillingPeriod | null;
  advancePeriod: BillingPeriod | null;
  subscription?: Subscription;
  advanceSubscription?: Subscription;
  extraLines?: DraftLine[];
}

/** Waits for in-flight handlers, then starts the next run with the state carried over. */
async function carryOn(state: CustomerState): Promise<never> {
  await condition(allHandlersFinished);
  return continueAsNew<typeof customerWorkflow>({
    brandId: state.brandId,
    customerId: state.customerId,
    email: state.email,
    name: state.name ?? undefined,
    carried: state,
  });
}
