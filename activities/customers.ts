/** Customer registry, lead outcomes and outbound messages: the customer workflow's bookkeeping. */
import { markLeadConverted, markLeadExpired } from '../data/leads';
import { getPolicy } from '../data/policies';
import type { Db } from '../infra/db';
import type { Policy } from '../domain/policies';
import type { CustomerStage } from '../workflows/shared';

export interface RegisterCustomerInput {
  brandId: string;
  customerId: string;
  email: string;
  name: string | null;
  stage: CustomerStage;
  workflowId: string;
}

export interface LifecycleMessage {
  brandId: string;
  customerId: string;
  /** Same key, same message: a retried or replayed event sends once. */
  dedupeKey: string;
  category: 'nurture' | 'transactional';
  template: string;
  recipient: string;
  data: Record<string, unknown>;
}

export function createCustomerActivities({ db }: { db: Db }) {
  return {
    /** Idempotent: a retry (or a later stage change) updates the same row. */
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

    async getAcquisitionPolicy({ brandId }: { brandId: string }): Promise<Policy<'acquisition'>> {
      return (await getPolicy(db, brandId, 'acquisition')).document;
    },

    /**
     * Queues a message in the outbox, once per dedupe key. Delivery (templates, preferences,
     * quiet hours, SMTP) is the communication workflow's job.
     */
    async sendLifecycleMessage(msg: LifecycleMessage): Promise<{ queued: boolean }> {
      const inserted = await db('outbound_messages')
        .insert({
          brand_id: msg.brandId,
          customer_id: msg.customerId,
          dedupe_key: msg.dedupeKey,
          category: msg.category,
          template: msg.template,
          recipient: msg.recipient,
          data: msg.data,
        })
        .onConflict(['brand_id', 'dedupe_key'])
        .ignore()
        .returning('id');
      return { queued: inserted.length > 0 };
    },

    async recordLeadConverted({ brandId, customerId, at }: { brandId: string; customerId: string; at: string }): Promise<void> {
      await markLeadConverted(db, brandId, customerId, new Date(at));
    },

    async recordLeadExpired({ brandId, customerId, at }: { brandId: string; customerId: string; at: string }): Promise<void> {
      await markLeadExpired(db, brandId, customerId, new Date(at));
    },
  };
}
