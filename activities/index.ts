/**
 * Every side effect lives here. Built by a factory that receives its dependencies, so the
 * worker wires real ones and tests wire the ones they need.
 */
import type { Db } from '../infra/db';
import type { CustomerStage } from '../workflows/shared';

export interface ActivityDeps {
  db: Db;
}

export interface RegisterCustomerInput {
  brandId: string;
  customerId: string;
  email: string;
  name: string | null;
  stage: CustomerStage;
  workflowId: string;
}

export function createActivities({ db }: ActivityDeps) {
  return {
    /** Idempotent: a retry (or a re-run) updates the same row. */
    async registerCustomer(input: RegisterCustomerInput): Promise<void> {
      await db('customers')
        .insert({
          brand_id: input.brandId,
          id: input.customerId,
          email: input.email,
          name: input.name,
          stage: input.stage,
          workflow_id: input.workflowId,
        })
        .onConflict(['brand_id', 'id'])
        .merge({ email: input.email, name: input.name, stage: input.stage, updated_at: db.fn.now() });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
