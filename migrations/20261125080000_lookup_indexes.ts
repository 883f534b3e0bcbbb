/**
 * Indexes the period-close profile asked for (bench/, docs/benchmarks.md): usage claimed by an
 * invoice, credit notes of an invoice, and a customer's ledger accounts were read by scans that
 * grew with the whole table.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('usage_events', (t) => t.index(['invoice_id']));
  await knex.schema.alterTable('invoices', (t) => t.index(['corrects_invoice_id']));
  await knex.schema.alterTable('ledger_entries', (t) => t.index(['customer_id', 'account']));
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('ledger_entries', (t) => t.dropIndex(['customer_id', 'account']));
  await knex.schema.alterTable('invoices', (t) => t.dropIndex(['corrects_invoice_id']));
  await knex.schema.alterTable('usage_events', (t) => t.dropIndex(['invoice_id']));
}
