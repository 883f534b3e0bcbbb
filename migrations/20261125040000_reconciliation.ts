/**
 * Reconciliation: one run per brand, gateway and settlement day (a re-run of the day updates the
 * same run), the items it found — every line of the report and every record of ours in exactly
 * one item — and the gateway's payouts, recorded net of fees.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('reconciliation_runs', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable().references('brands.id');
    t.text('gateway').notNullable();
    t.date('report_date').notNullable();
    t.text('status').notNullable(); // running | completed | failed
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    // Items per kind, lines and records compared, payouts: what the API lists without the items.
    t.jsonb('counts').notNullable().defaultTo('{}');
    t.text('error');
    t.unique(['brand_id', 'gateway', 'report_date']);
    t.index(['brand_id', 'report_date']);
  });
  await knex.raw(`ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_status_check CHECK (status IN ('running', 'completed', 'failed'))`);

  await knex.schema.createTable('reconciliation_items', (t) => {
    t.bigIncrements('id').primary();
    t.text('run_id').notNullable().references('reconciliation_runs.id').onDelete('CASCADE');
    t.text('kind').notNullable();
    // The report's side: null when the item is a record of ours the report does not carry.
    t.text('line_type'); // payment | refund | chargeback | fee | adjustment
    t.text('line_id');
    t.text('gateway_payment_id');
    // Our side: null when the gateway reported something we have no record of.
    t.text('our_record_type'); // payment | refund | chargeback
    t.text('our_record_id');
    t.text('our_gateway_id');
    // Signed from the merchant's side: payments positive, refunds and chargebacks negative.
    t.bigInteger('report_amount_minor');
    t.bigInteger('report_fee_minor');
    t.bigInteger('our_amount_minor');
    t.specificType('currency', 'char(3)');
    t.jsonb('detail').notNullable().defaultTo('{}');
    // A timing difference is closed by the later run that found the record on its report.
    t.text('resolved_by_run_id').references('reconciliation_runs.id');
    t.index(['run_id']);
    t.index(['our_record_id']);
  });
  await knex.raw(
    `ALTER TABLE reconciliation_items ADD CONSTRAINT reconciliation_items_kind_check
       CHECK (kind IN ('matched', 'missing_ours', 'missing_gateway', 'amount_mismatch', 'timing_difference'))`,
  );

  await knex.schema.createTable('payouts', (t) => {
    t.text('id').primary();
    t.text('brand_id').notNullable().references('brands.id');
    t.text('gateway').notNullable();
    t.date('report_date').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.bigInteger('gross_minor').notNullable();
    t.bigInteger('fees_minor').notNullable();
    t.bigInteger('net_minor').notNullable();
    t.integer('line_count').notNullable();
    t.text('run_id').references('reconciliation_runs.id');
    // Bumped when a re-run of the day finds other totals; each version posts the difference.
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['brand_id', 'gateway', 'report_date', 'currency']);
  });
  await knex.raw('ALTER TABLE payouts ADD CONSTRAINT payouts_net_check CHECK (net_minor = gross_minor - fees_minor)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('payouts');
  await knex.schema.dropTable('reconciliation_items');
  await knex.schema.dropTable('reconciliation_runs');
}
