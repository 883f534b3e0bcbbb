/**
 * Disputes: a customer's dispute of an invoice or one of its lines, or a chargeback the gateway
 * reported. The dispute workflow moves a row from open to resolved; the row keeps the evidence,
 * the decision and the credit note that paid it out.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('disputes', (t) => {
    t.text('id').primary(); // dsp_<32 hex>
    t.text('brand_id').notNullable().references('brands.id');
    t.text('customer_id').notNullable();
    t.text('invoice_id').notNullable().references('invoices.id');
    // null: the whole invoice is disputed.
    t.integer('line_position');
    t.bigInteger('amount_minor').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.text('reason').notNullable();
    t.text('kind').notNullable(); // customer | chargeback
    // Chargebacks: the gateway's dispute id and the payment it took back.
    t.text('chargeback_id');
    t.text('payment_id');
    // API requests: the client's Idempotency-Key, with the request it answered.
    t.text('idempotency_key');
    t.text('request_fingerprint');
    t.text('status').notNullable().defaultTo('open');
    // What the policy decided first: auto_credit, or why the dispute needed a closer look.
    t.text('auto_decision');
    // The billing period whose abuse cap an automatic credit counts against.
    t.text('auto_credit_period');
    t.text('resolution');
    t.text('outcome');
    t.bigInteger('credited_minor').notNullable().defaultTo(0);
    t.jsonb('evidence');
    t.jsonb('decision');
    t.timestamp('decision_deadline', { useTz: true });
    t.timestamp('evidence_due_by', { useTz: true });
    t.timestamp('evidence_submitted_at', { useTz: true });
    t.text('credit_note_id').references('invoices.id');
    t.timestamp('opened_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('resolved_at', { useTz: true });
    t.unique(['brand_id', 'chargeback_id']);
    t.unique(['brand_id', 'customer_id', 'idempotency_key']);
    t.index(['brand_id', 'customer_id']);
    t.index(['brand_id', 'invoice_id']);
  });
  await knex.raw('ALTER TABLE disputes ADD CONSTRAINT disputes_amount_check CHECK (amount_minor > 0)');
  await knex.raw('ALTER TABLE disputes ADD CONSTRAINT disputes_credited_check CHECK (credited_minor >= 0 AND credited_minor <= amount_minor)');
  await knex.raw(`ALTER TABLE disputes ADD CONSTRAINT disputes_kind_check CHECK (kind IN ('customer', 'chargeback'))`);
  await knex.raw(
    `ALTER TABLE disputes ADD CONSTRAINT disputes_status_check CHECK (status IN ('open', 'evidence_gathering', 'escalated', 'awaiting_gateway', 'resolved'))`,
  );
  await knex.raw(`ALTER TABLE disputes ADD CONSTRAINT disputes_outcome_check CHECK (outcome IS NULL OR outcome IN ('credited', 'rejected', 'won', 'lost'))`);
  await knex.raw(
    `ALTER TABLE disputes ADD CONSTRAINT disputes_resolution_check CHECK (resolution IS NULL OR resolution IN ('auto', 'rule', 'operator', 'default', 'gateway'))`,
  );
  await knex.raw(`ALTER TABLE disputes ADD CONSTRAINT disputes_chargeback_check CHECK ((kind = 'chargeback') = (chargeback_id IS NOT NULL))`);
  // The abuse cap counts a customer's automatic credits per period.
  await knex.raw(`CREATE INDEX disputes_auto_credits ON disputes (brand_id, customer_id, auto_credit_period) WHERE auto_decision = 'auto_credit'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('disputes');
}
