/**
 * Every side effect lives here. Built by a factory that receives its dependencies, so the
 * worker wires real ones and tests wire the ones they need.
 */
import type { Db } from '../infra/db';
import type { PaymentGateway } from '../gateway/adapter';
import { createBillingActivities, Mailer } from './billing';
import { createCollectionsActivities } from './collections';
import { createCommunicationActivities } from './communications';
import { createCustomerActivities } from './customers';
import { createDisputeActivities } from './disputes';
import { createProvisioningActivities } from './provisioning';
import { createReconciliationActivities } from './reconciliation';

export interface ActivityDeps {
  db: Db;
  mailer: Mailer;
  /** Base URL of the API, for links in customer emails. */
  publicUrl: string;
  /** Signs invoice links in emails (shared with the API). */
  linkSecret: string;
  gateway: PaymentGateway;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createCustomerActivities(deps),
    ...createProvisioningActivities(deps),
    ...createBillingActivities(deps),
    ...createCollectionsActivities(deps),
    ...createCommunicationActivities(deps),
    ...createReconciliationActivities(deps),
    ...createDisputeActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { RegisterCustomerInput, LifecycleMessage } from './customers';
export type { Mailer, InvoiceSummary } from './billing';
export type { ChargeOutcome } from './collections';
