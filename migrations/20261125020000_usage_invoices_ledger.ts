/**
 * Usage events, invoices and their lines, per-brand invoice numbering and tax rates, and the
 * double-entry ledger. Money is integer minor units (bigint); usage quantities and unit prices
 * are exact decimals (numeric), never floats.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('usage_events', (t) => {
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    t.text('event_id').notNullable();
    t.text('metric').notNullable();
    t.specificType('quantity', 'numeric(30,12)').notNullable();
    t.timestamp('occurred_at', { useTz: true }).notNullable();
    t.jsonb('properties').notNullable().defaultTo('{}');
    t.timestamp('received_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // Set, in the same transaction that finalizes the invoice, when the event is billed.
    t.text('invoice_id');
    t.primary(['brand_id', 'customer_id', 'event_id']);
  });
  await knex.raw('ALTER TABLE usage_events ADD CONSTRAINT usage_quantity_check CHECK (quantity >= 0)');
  await knex.raw('CREATE INDEX usage_unbilled ON usage_events (brand_id, customer_id, occurred_at) WHERE invoice_id IS NULL');

  // Sequential invoice numbers per brand without gaps: the counter moves in the transaction
  // that finalizes the invoice, so a rolled-back invoice never consumes a number.
  await knex.schema.createTable('invoice_counters', (t) => {
    t.text('brand_id').primary().references('brands.id');
    t.bigInteger('last_number').notNullable().defaultTo(0);
  });

  // Tax rates per brand and country; '*' is the brand's default.
  await knex.schema.createTable('tax_rates', (t) => {
    t.text('brand_id').notNullable().references('brands.id');
    t.text('country').notNullable();
    t.specificType('rate', 'numeric(7,4)').notNullable(); // percent, e.g. 19.0000
    t.boolean('inclusive').notNullable().defaultTo(false);
    t.text('name').notNullable().defaultTo('Tax');
    t.primary(['brand_id', 'country']);
  });

  await knex.schema.createTable('invoices', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable().references('brands.id');
    t.text('customer_id').notNullable();
    t.bigInteger('number').notNullable();
    // What the invoice bills; (brand, customer, billing_key) makes finalize idempotent.
    t.text('billing_key').notNullable();
    t.text('kind').notNullable(); // opening | period | final | credit_note
    t.text('status').notNullable(); // finalized | paid | void
    t.specificType('currency', 'char(3)').notNullable();
    t.integer('period_number');
    t.timestamp('period_start', { useTz: true });
    t.timestamp('period_end', { useTz: true });
    t.bigInteger('subtotal_minor').notNullable();
    t.bigInteger('discount_minor').notNullable();
    t.bigInteger('tax_minor').notNullable();
    t.specificType('tax_rate', 'numeric(7,4)').notNullable();
    t.boolean('tax_inclusive').notNullable();
    t.bigInteger('credit_applied_minor').notNullable();
    t.bigInteger('total_minor').notNullable();
    t.bigInteger('amount_due_minor').notNullable();
    t.timestamp('issued_at', { useTz: true }).notNullable();
    t.timestamp('due_at', { useTz: true }).notNullable();
    t.text('corrects_invoice_id');
    t.unique(['brand_id', 'number']);
    t.unique(['brand_id', 'customer_id', 'billing_key']);
    t.index(['brand_id', 'customer_id']);
  });

  await knex.schema.createTable('invoice_lines', (t) => {
    t.text('invoice_id').notNullable().references('invoices.id');
    t.integer('position').notNullable();
    t.text('kind').notNullable(); // recurring | usage | usage_adjustment | discount | proration | tax
    t.text('description').notNullable();
    t.text('metric');
    t.specificType('quantity', 'numeric(30,12)');
    t.text('unit_price'); // exact decimal as text, e.g. "0.0004"
    t.text('amount_exact'); // full-precision amount before the one rounding
    t.bigInteger('amount_minor').notNullable();
    t.timestamp('period_start', { useTz: true });
    t.timestamp('period_end', { useTz: true });
    t.jsonb('detail').notNullable().defaultTo('{}');
    t.primary(['invoice_id', 'position']);
  });

  // Double entry: every financial event is one ledger transaction whose entries sum to zero.
  await knex.schema.createTable('ledger_transactions', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable();
    t.text('customer_id');
    t.text('kind').notNullable(); // invoice | payment | refund | credit_note | payout | writeoff …
    t.text('document_id').notNullable(); // the record it belongs to
    t.specificType('currency', 'char(3)').notNullable();
    t.timestamp('posted_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['brand_id', 'kind', 'document_id']);
  });
  await knex.schema.createTable('ledger_entries', (t) => {
    t.bigIncrements('id').primary();
    t.text('transaction_id').notNullable().references('ledger_transactions.id');
    t.text('account').notNullable(); // receivables | revenue | tax_payable | customer_credit | cash | …
    t.text('customer_id');
    // Debits positive, credits negative: a transaction balances when its entries sum to zero.
    t.bigInteger('amount_minor').notNullable();
    t.index(['transaction_id']);
    t.index(['account']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['ledger_entries', 'ledger_transactions', 'invoice_lines', 'invoices', 'tax_rates', 'invoice_counters', 'usage_events']) {
    await knex.schema.dropTable(table);
  }
}
