/**
 * Remittance and webhooks in: refunds of payments (idempotent per brand by the client's key),
 * the part of a payment that exceeded its invoice's balance (kept as customer credit), and every
 * verified gateway webhook, de-duplicated by the gateway's event id.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // amount_minor stays what the payment took off its invoice (the receivables check reads it);
  // credited_minor is what it brought beyond that, booked to customer_credit. What the gateway
  // collected is their sum, so a payment for an invoice already paid applies 0 and credits all.
  await knex.schema.alterTable('payments', (t) => {
    t.bigInteger('credited_minor').notNullable().defaultTo(0);
    t.index(['gateway', 'gateway_payment_id']);
  });
  await knex.raw('ALTER TABLE payments DROP CONSTRAINT payments_amount_check');
  await knex.raw(
    'ALTER TABLE payments ADD CONSTRAINT payments_amount_check CHECK (amount_minor >= 0 AND credited_minor >= 0 AND amount_minor + credited_minor > 0)',
  );

  await knex.schema.createTable('refunds', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable().references('brands.id');
    t.text('customer_id').notNullable();
    t.text('payment_id').notNullable().references('payments.id');
    t.text('idempotency_key').notNullable();
    t.text('gateway').notNullable();
    t.text('gateway_refund_id');
    // The refunded payment's id at the gateway, as settlement reports name it.
    t.text('gateway_payment_id').notNullable();
    t.bigInteger('amount_minor').notNullable();
    // The part returned out of the customer's credit balance (an overpayment given back), set when booked.
    t.bigInteger('credit_minor').notNullable().defaultTo(0);
    t.specificType('currency', 'char(3)').notNullable();
    t.text('reason').notNullable();
    t.text('status').notNullable(); // pending | succeeded | failed
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('succeeded_at', { useTz: true });
    t.unique(['brand_id', 'idempotency_key']);
    t.index(['brand_id', 'payment_id']);
    t.index(['gateway', 'gateway_refund_id']);
  });
  await knex.raw('ALTER TABLE refunds ADD CONSTRAINT refunds_amount_check CHECK (amount_minor > 0)');
  await knex.raw(`ALTER TABLE refunds ADD CONSTRAINT refunds_status_check CHECK (status IN ('pending', 'succeeded', 'failed'))`);

  await knex.schema.createTable('webhook_events', (t) => {
    t.bigIncrements('id').primary();
    t.text('brand_id').references('brands.id');
    t.text('gateway').notNullable();
    t.text('event_id').notNullable();
    t.text('type').notNullable();
    t.text('gateway_type').notNullable();
    t.jsonb('payload').notNullable();
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('processed_at', { useTz: true });
    t.text('outcome');
    t.unique(['gateway', 'event_id']);
    t.index(['type', 'processed_at']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('webhook_events');
  await knex.schema.dropTable('refunds');
  await knex.raw('ALTER TABLE payments DROP CONSTRAINT payments_amount_check');
  await knex.raw('ALTER TABLE payments ADD CONSTRAINT payments_amount_check CHECK (amount_minor > 0)');
  await knex.schema.alterTable('payments', (t) => {
    t.dropIndex(['gateway', 'gateway_payment_id']);
    t.dropColumn('credited_minor');
  });
}
