/**
 * Outbound communication: each customer's preferences (opt-outs, time zone, channel), per-brand
 * template overrides, and the delivery record of every message. The record is the outbox table
 * the customer workflow already writes (one row per dedupe key), grown into a delivery log so
 * old and new senders de-duplicate against the same rows.
 */
import type { Knex } from 'knex';

const STATUSES = ['queued', 'waiting_quiet_hours', 'sending', 'sent', 'suppressed', 'failed'];

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('communication_preferences', (t) => {
    t.text('brand_id').notNullable();
    t.text('customer_id').notNullable();
    // Categories the customer opted out of; 'transactional' is refused by the API.
    t.specificType('opted_out', 'text[]').notNullable().defaultTo('{}');
    // IANA zone for quiet hours; null means the brand policy's default zone.
    t.text('time_zone');
    t.text('channel').notNullable().defaultTo('email');
    t.text('webhook_url');
    // Signs webhook deliveries (HMAC-SHA256); created with the first webhook URL, kept after.
    t.text('webhook_secret');
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['brand_id', 'customer_id']);
    t.foreign(['brand_id', 'customer_id']).references(['brand_id', 'id']).inTable('customers');
  });
  await knex.raw(`ALTER TABLE communication_preferences ADD CONSTRAINT communication_preferences_channel_check CHECK (channel IN ('email', 'webhook'))`);
  await knex.raw(
    `ALTER TABLE communication_preferences ADD CONSTRAINT communication_preferences_webhook_check CHECK (channel <> 'webhook' OR (webhook_url IS NOT NULL AND webhook_secret IS NOT NULL))`,
  );

  await knex.schema.createTable('message_templates', (t) => {
    t.text('brand_id').notNullable().references('brands.id');
    t.text('template').notNullable();
    t.text('subject').notNullable();
    t.text('text').notNullable();
    t.text('html').notNullable();
    t.integer('version').notNullable().defaultTo(1);
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.primary(['brand_id', 'template']);
  });

  await knex.schema.alterTable('outbound_messages', (t) => {
    t.text('channel').notNullable().defaultTo('email');
    // Why a message was not sent (opted_out:<category>) or why it failed last.
    t.text('reason');
    t.text('error');
    t.integer('attempts').notNullable().defaultTo(0);
    t.text('subject');
    t.text('workflow_id');
    // The message's Message-ID (email) or delivery id (webhook), stable across retries.
    t.text('message_id');
    t.timestamp('scheduled_for', { useTz: true });
    t.timestamp('sent_at', { useTz: true });
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // Operators list a customer's messages newest first, paging by id.
    t.index(['brand_id', 'customer_id', 'id']);
  });
  await knex.raw(`ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_status_check CHECK (status IN (${STATUSES.map((s) => `'${s}'`).join(', ')}))`);
  await knex.raw(`ALTER TABLE outbound_messages ADD CONSTRAINT outbound_messages_channel_check CHECK (channel IN ('email', 'webhook'))`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_channel_check');
  await knex.raw('ALTER TABLE outbound_messages DROP CONSTRAINT outbound_messages_status_check');
  await knex.schema.alterTable('outbound_messages', (t) => {
    t.dropIndex(['brand_id', 'customer_id', 'id']);
    for (const column of ['channel', 'reason', 'error', 'attempts', 'subject', 'workflow_id', 'message_id', 'scheduled_for', 'sent_at', 'updated_at']) {
      t.dropColumn(column);
    }
  });
  await knex.schema.dropTable('message_templates');
  await knex.schema.dropTable('communication_preferences');
}
