/**
 * Catalog (versioned plans), per-brand policies, leads and attribution, and what provisioning
 * creates for a customer: a hashed service credential, entitlements and a subscription.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('brands', (t) => {
    // Free-form brand settings (time zone, support address…), validated by the API.
    t.jsonb('settings').notNullable().defaultTo('{}');
  });

  await knex.schema.createTable('plans', (t) => {
    t.text('brand_id').notNullable().references('brands.id');
    t.text('code').notNullable();
    t.integer('version').notNullable();
    t.text('name').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.bigInteger('recurring_fee_minor').notNullable();
    // What one period of this plan costs us to serve; the offer engine maximises fee − cost.
    t.bigInteger('cost_to_serve_minor').notNullable().defaultTo(0);
    t.text('billing_period').notNullable();
    t.jsonb('entitlements').notNullable().defaultTo('{}');
    t.jsonb('usage_components').notNullable().defaultTo('[]');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['brand_id', 'code', 'version']);
  });
  await knex.raw('ALTER TABLE plans ADD CONSTRAINT plans_fee_check CHECK (recurring_fee_minor >= 0 AND cost_to_serve_minor >= 0)');
  await knex.raw('ALTER TABLE plans ADD CONSTRAINT plans_version_check CHECK (version >= 1)');

  await knex.schema.createTable('policies', (t) => {
    t.text('brand_id').notNullable().references('brands.id');
    t.text('kind').notNullable();
    t.integer('version').notNullable().defaultTo(1);
    t.jsonb('document').notNullable();
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['brand_id', 'kind']);
  });

  await knex.schema.createTable('leads', (t) => {
    t.text('brand_id').notNullable().references('brands.id');
    t.text('id').notNullable(); // the customer id the lead becomes
    t.text('external_id'); // the client's own id, the idempotency key when given
    t.text('idempotency_key');
    t.text('email').notNullable();
    t.text('name');
    t.text('source').notNullable();
    t.text('campaign').notNullable().defaultTo('');
    t.jsonb('attributes').notNullable().defaultTo('{}');
    t.text('status').notNullable().defaultTo('open'); // open | converted | expired
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('converted_at', { useTz: true });
    t.timestamp('expired_at', { useTz: true });
    t.primary(['brand_id', 'id']);
    t.unique(['brand_id', 'external_id']);
    t.unique(['brand_id', 'idempotency_key']);
    t.index(['brand_id', 'source', 'campaign']);
  });
  await knex.raw(`ALTER TABLE leads ADD CONSTRAINT leads_status_check CHECK (status IN ('open', 'converted', 'expired'))`);

  // Revenue attributed back to the customer's lead source/campaign (direct sign-ups count as
  // source "direct"); billing writes here as money arrives.
  await knex.schema.createTable('attributed_revenue', (t) => {
    t.bigIncrements('id').primary();
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    t.text('source_event').notNullable(); // e.g. "payment:<id>": one row per money event
    t.bigInteger('amount_minor').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.timestamp('recorded_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['brand_id', 'source_event']);
  });

  // Outbound messages (nurture and later every lifecycle message), de-duplicated by key.
  await knex.schema.createTable('outbound_messages', (t) => {
    t.bigIncrements('id').primary();
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    t.text('dedupe_key').notNullable();
    t.text('category').notNullable();
    t.text('template').notNullable();
    t.text('recipient').notNullable();
    t.jsonb('data').notNullable().defaultTo('{}');
    t.text('status').notNullable().defaultTo('queued');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['brand_id', 'dedupe_key']);
    t.index(['brand_id', 'customer_id']);
  });

  await knex.schema.createTable('customer_credentials', (t) => {
    t.bigIncrements('id').primary();
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    t.text('provisioning_id').notNullable(); // idempotency: one credential per provisioning
    t.text('secret_hash').notNullable().unique();
    t.text('prefix').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('revoked_at', { useTz: true });
    t.unique(['brand_id', 'provisioning_id']);
  });

  await knex.schema.createTable('entitlements', (t) => {
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    t.text('provisioning_id').notNullable();
    t.jsonb('features').notNullable();
    t.jsonb('quotas').notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['brand_id', 'customer_id']);
  });

  await knex.schema.createTable('subscriptions', (t) => {
    t.text('id').primary(); // = provisioning id
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    t.text('plan_code').notNullable();
    t.integer('plan_version').notNullable();
    t.bigInteger('price_minor').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.jsonb('discount');
    t.text('offer_rule');
    t.text('status').notNullable(); // active | cancelled
    t.timestamp('current_period_start', { useTz: true }).notNullable();
    t.timestamp('current_period_end', { useTz: true }).notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.foreign(['brand_id', 'plan_code', 'plan_version']).references(['brand_id', 'code', 'version']).inTable('plans');
    t.index(['brand_id', 'customer_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['subscriptions', 'entitlements', 'customer_credentials', 'outbound_messages', 'attributed_revenue', 'leads', 'policies', 'plans']) {
    await knex.schema.dropTable(table);
  }
  await knex.schema.alterTable('brands', (t) => t.dropColumn('settings'));
}
