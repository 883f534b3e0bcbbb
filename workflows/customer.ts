/**
 * The customer workflow: one long-lived run per customer (`customer-<brand>:<id>`) that carries
 * them through the stages lead → active (→ past_due → suspended) → cancelled, or lead_expired.
 * It continues-as-new at every billing-period boundary (and when the SDK suggests it), carrying
 * its state, so history stays bounded over years.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { addDuration, billingPeriod, BillingPeriod, parseIsoDuration } from '../domain/period';
import {
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
} from './shared';

type Activities = ReturnType<typeof createActivities>;

const NON_RETRYABLE = Object.values(ErrorTypes);

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
  };
}

export async function customerWorkflow(input: CustomerWorkflowInput): Promise<void> {
  if (!input.brandId || !input.customerId || !input.email) {
    throw ApplicationFailure.nonRetryable('brandId, customerId and email are required', ErrorTypes.INVALID_INPUT);
  }
  const firstRun = !input.carried;
  const state: CustomerState = input.carried ?? initialState(input);
  let activating = false;

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
  const outbox: Array<{ dedupeKey: string; template: string; data: Record<string, unknown> }> = [];

  // Usage itself never comes through signals; only an allowance threshold crossing does. The
  // API may report a crossing twice: it is told to the customer once per period.
  setHandler(usageThresholdSignal, (crossing: UsageThresholdCrossed) => {
    const period = crossing.periodNumber ?? state.currentPeriod?.number ?? 0;
    const key = `${period}:${crossing.metric}:${crossing.threshold}`;
    if (state.stage === 'lead' || state.usageAlerts.includes(key)) return;
    state.usageAlerts = [...state.usageAlerts, key].slice(-USAGE_ALERT_LIMIT);
    outbox.push({
      dedupeKey: `usage:${state.customerId}:${key}`,
      template: crossing.threshold >= 100 ? 'usage-allowance-used' : 'usage-allowance-80',
      data: { metric: crossing.metric, threshold: crossing.threshold, quantity: crossing.quantity, included: crossing.included },
    });
  });

  // A chargeback reported by the gateway (at least once): recorded once, and the customer told.
  setHandler(chargebackSignal, (notice: ChargebackNotice) => {
    if (state.chargebacks.some((c) => c.chargebackId === notice.chargebackId)) return;
    const { eventId: _eventId, gatewayPaymentId: _gatewayPaymentId, ...chargeback } = notice;
    state.chargebacks = [...state.chargebacks, { ...chargeback, receivedAt: nowIso() }];
    outbox.push({
      dedupeKey: `chargeback:${notice.chargebackId}`,
      template: 'dispute-opened',
      data: { invoiceId: notice.invoiceId, amountMinor: notice.amountMinor, currency: notice.currency, reason: notice.reason },
    });
  });

  let dunningChanges = 0;
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
        dunningChanges += 1;
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
    await bookkeeping.sendLifecycleMessage({
      brandId: state.brandId,
      customerId: state.customerId,
      dedupeKey: `welcome:${state.customerId}`,
      category: 'transactional',
      template: 'welcome',
      recipient: state.email,
      data: { plan: subscription.planName },
    });
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
      return;
    }
  }

  // Active: the fee for the first period was invoiced in advance at activation; at each
  // period's end, usage is rated in arrears together with the next period's fee. Dunning runs
  // on its own schedule in between, carried across runs in the state.
  await condition(() => !activating);
  const subscription = state.subscription!;
  if (!state.billing.openingInvoiced) {
    await bill({ billingKey: 'opening', kind: 'opening', closingPeriod: null, advancePeriod: state.currentPeriod! });
    state.billing.openingInvoiced = true;
    await collectOrStartDunning();
  }
  for (;;) {
    const period = state.currentPeriod!;
    const dunningAt = nextDunningStep()?.at ?? Infinity;
    const wakeAt = Math.min(Date.parse(period.end), dunningAt);
    if (wakeAt > Date.now()) {
      const seen = dunningChanges;
      await condition(() => workflowInfo().continueAsNewSuggested || dunningChanges !== seen || outbox.length > 0, wakeAt - Date.now());
      await flushOutbox();
      if (workflowInfo().continueAsNewSuggested) return carryOnAfterOutbox();
      continue; // a payment method update may have changed the schedule
    }
    const step = nextDunningStep();
    if (step && Date.now() >= step.at) {
      await runDunningStep(step.action);
      if (state.stage === 'cancelled') {
        await condition(allHandlersFinished);
        await flushOutbox();
        return;
      }
      continue;
    }
    if (Date.now() >= Date.parse(period.end)) {
      const next = billingPeriod(subscription.startedAt, subscription.billingPeriod, period.number + 1);
      await bill({ billingKey: `period:${period.number}`, kind: 'period', closingPeriod: period, advancePeriod: next });
      state.currentPeriod = next;
      // In dunning, the next retry charges this invoice together with the older ones.
      if (!state.dunning) await collectOrStartDunning();
      return carryOnAfterOutbox();
    }
  }

  async function carryOnAfterOutbox(): Promise<never> {
    await flushOutbox();
    return carryOn(state);
  }

  async function flushOutbox(): Promise<void> {
    for (let msg = outbox.shift(); msg; msg = outbox.shift()) {
      await bookkeeping.sendLifecycleMessage({
        brandId: state.brandId,
        customerId: state.customerId,
        category: 'transactional',
        recipient: state.email,
        ...msg,
      });
    }
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
    await moveTo('past_due');
    await notify(hard ? 'payment-failed-update-method' : 'payment-failed', { declineCode: decline.code, message: decline.message });
  }

  function nextDunningStep(): { at: number; action: 'retry' | 'suspend' | 'write_off' } | null {
    const d = state.dunning;
    if (!d) return null;
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
      await moveTo('suspended');
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
    await moveTo('cancelled');
    await notify('account-written-off', {});
  }

  async function recovered(): Promise<void> {
    const wasSuspended = state.dunning?.suspended ?? false;
    state.dunning = null;
    state.dunningState = 'none';
    if (wasSuspended) await bookkeeping.setEntitlementsActive({ brandId: state.brandId, customerId: state.customerId, active: true });
    await moveTo('active');
    await notify(wasSuspended ? 'service-restored' : 'payment-recovered', {});
  }

  /** Lifecycle messages of dunning, once each per episode and step. */
  async function notify(template: string, data: Record<string, unknown>): Promise<void> {
    const episode = state.dunning?.startedAt ?? state.stageHistory[state.stageHistory.length - 1]!.at;
    const step = state.dunning ? `${state.dunning.retriesDone}` : 'end';
    await bookkeeping.sendLifecycleMessage({
      brandId: state.brandId,
      customerId: state.customerId,
      dedupeKey: `dunning:${state.customerId}:${episode}:${template}:${step}`,
      category: 'transactional',
      template,
      recipient: state.email,
      data,
    });
  }

  /** Finalize (idempotent by billing key), then present; collections take over from here. */
  async function bill(what: { billingKey: string; kind: 'opening' | 'period'; closingPeriod: BillingPeriod | null; advancePeriod: BillingPeriod | null }) {
    const invoice = await bookkeeping.finalizeInvoice({
      brandId: state.brandId,
      customerId: state.customerId,
      subscription: state.subscription!,
      issuedAt: nowIso(),
      ...what,
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
    await bookkeeping.presentInvoice({ brandId: state.brandId, invoiceId: invoice.invoiceId });
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
        await bookkeeping.sendLifecycleMessage({
          brandId: s.brandId,
          customerId: s.customerId,
          dedupeKey: `nurture:${s.customerId}:${lead.nurtureSent}:${next.template}`,
          category: 'nurture',
          template: next.template,
          recipient: s.email,
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
function updateFailure(e: ActivationError): ApplicationFailure {
  return ApplicationFailure.create({ type: e.type, message: e.message, nonRetryable: true });
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
