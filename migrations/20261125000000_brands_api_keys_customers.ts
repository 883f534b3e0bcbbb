/**
 * Brands (tenants), their hashed API keys, and the customer registry the API uses to scope
 * reads to a brand. Customer state itself lives in the customer workflow.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('brands', (t) => {
    t.text('id').primary(); // slug, e.g. "acme"
    t.text('name').notNullable();
    t.specificType('currency', 'char(3)').notNullable();
    t.text('mode').notNullable().defaultTo('sandbox');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE brands ADD CONSTRAINT brands_mode_check CHECK (mode IN ('sandbox', 'live'))`);
  await knex.raw(`ALTER TABLE brands ADD CONSTRAINT brands_id_check CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,39}$')`);
  await knex.raw(`ALTER TABLE brands ADD CONSTRAINT brands_currency_check CHECK (currency ~ '^[A-Z]{3}$')`);

  await knex.schema.createTable('api_keys', (t) => {
    t.bigIncrements('id').primary();
    t.text('brand_id').notNullable().references('brands.id').onDelete('CASCADE');
    // sha256 of the whole key; the key itself is shown once and never stored.
    t.text('key_hash').notNullable().unique();
    // The first characters, so an operator can tell keys apart.
    t.text('prefix').notNullable();
    t.text('label').notNullable().defaultTo('');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('revoked_at', { useTz: true });
    t.index(['brand_id']);
  });

  await knex.schema.createTable('customers', (t) => {
    t.text('brand_id').notNullable().references('brands.id');
    t.text('id').notNullable();
    t.text('email').notNullable();
    t.text('name');
    t.text('stage').notNullable();
    t.text('workflow_id').notNullable().unique();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['brand_id', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('customers');
  await knex.schema.dropTable('api_keys');
  await knex.schema.dropTable('brands');
}
