/**
 * The customer workflow: one long-lived run per customer (`customer-<brand>:<id>`), carried
 * from period to period by continue-as-new so history stays bounded over years.
 */
import {
  ApplicationFailure,
  continueAsNew,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { billingPeriod } from '../domain/period';
import {
  CustomerState,
  CustomerWorkflowInput,
  DEFAULT_BILLING_PERIOD,
  ErrorTypes,
  getCustomerQuery,
  SA,
} from './shared';

const { registerCustomer } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: [ErrorTypes.INVALID_INPUT] },
});

export async function customerWorkflow(input: CustomerWorkflowInput): Promise<void> {
  if (!input.brandId || !input.customerId || !input.email) {
    throw ApplicationFailure.nonRetryable('brandId, customerId and email are required', ErrorTypes.INVALID_INPUT);
  }
  const signedUpAt = input.signedUpAt ?? new Date(workflowInfo().startTime).toISOString();
  const periodLength = input.billingPeriod ?? DEFAULT_BILLING_PERIOD;
  const periodNumber = input.periodNumber ?? 1;
  const state: CustomerState = {
    brandId: input.brandId,
    customerId: input.customerId,
    email: input.email,
    name: input.name ?? null,
    stage: input.stage ?? 'active',
    signedUpAt,
    billingPeriod: periodLength,
    currentPeriod: billingPeriod(signedUpAt, periodLength, periodNumber),
    plan: null,
    dunningState: 'none',
  };
  setHandler(getCustomerQuery, () => state);

  upsertSearchAttributes([
    { key: SA.customerId, value: state.customerId },
    { key: SA.brandId, value: state.brandId },
    { key: SA.stage, value: state.stage },
    { key: SA.dunningState, value: state.dunningState },
  ]);

  if (periodNumber === 1) {
    await registerCustomer({
      brandId: state.brandId,
      customerId: state.customerId,
      email: state.email,
      name: state.name,
      stage: state.stage,
      workflowId: workflowInfo().workflowId,
    });
  }

  const msUntilPeriodEnd = Date.parse(state.currentPeriod.end) - Date.now();
  if (msUntilPeriodEnd > 0) await sleep(msUntilPeriodEnd);

  // Period boundary: the next run starts with a fresh history.
  await continueAsNew<typeof customerWorkflow>({
    ...input,
    signedUpAt,
    billingPeriod: periodLength,
    periodNumber: periodNumber + 1,
    stage: state.stage,
  });
}
