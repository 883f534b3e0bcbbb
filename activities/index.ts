/**
 * Every side effect lives here. Built by a factory that receives its dependencies, so the
 * worker wires real ones and tests wire the ones they need.
 */
import type { Db } from '../infra/db';
import { createCustomerActivities } from './customers';
import { createProvisioningActivities } from './provisioning';

export interface ActivityDeps {
  db: Db;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createCustomerActivities(deps),
    ...createProvisioningActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { RegisterCustomerInput, LifecycleMessage } from './customers';
