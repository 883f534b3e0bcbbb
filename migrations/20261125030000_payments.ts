/**
 * Payments: one row per charge attempt at the gateway, unique by the idempotency key that
 * derives from what it pays (invoice and attempt), so a retried activity records one payment;
 * and write-offs, where dunning gives up.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('payments', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable().references('brands.id');
    t.text('customer_id').notNullable();
    t.text('invoice_id').notNullable().references('invoices.id');
    t.text('idempotency_key').notNullable();
    t.text('gateway').notNullable();
    t.text('gateway_payment_id');
    t.text('status').notNullable(); // succeeded | declined
    t.text('decline_code');
    t.text('decline_message');
    t.bigInteger('amount_minor').notNullable();
    t.bigInteger('fee_minor');
    t.specificType('currency', 'char(3)').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['brand_id', 'idempotency_key']);
    t.index(['brand_id', 'invoice_id']);
  });
  await knex.raw(`ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN ('succeeded', 'declined'))`);
  await knex.raw('ALTER TABLE payments ADD CONSTRAINT payments_amount_check CHECK (amount_minor > 0)');

  // What dunning gives up on: the rest of an invoice moved from receivables to bad debt.
  await knex.schema.createTable('write_offs', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable().references('brands.id');
    t.text('customer_id').notNullable();
    t.text('invoice_id').notNullable().references('invoices.id');
    t.bigInteger('amount_minor').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['brand_id', 'invoice_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('write_offs');
  await knex.schema.dropTable('payments');
}
