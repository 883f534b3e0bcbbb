/**
 * Every side effect lives here. Built by a factory that receives its dependencies, so the
 * worker wires real ones and tests wire the ones they need.
 */
import type { Db } from '../infra/db';
import { createBillingActivities, Mailer } from './billing';
import { createCustomerActivities } from './customers';
import { createProvisioningActivities } from './provisioning';

export interface ActivityDeps {
  db: Db;
  mailer: Mailer;
  /** Base URL of the API, for links in customer emails. */
  publicUrl: string;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createCustomerActivities(deps),
    ...createProvisioningActivities(deps),
    ...createBillingActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { RegisterCustomerInput, LifecycleMessage } from './customers';
export type { Mailer, InvoiceSummary } from './billing';
