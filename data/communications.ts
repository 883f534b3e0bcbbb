/**
 * Customer communication in PostgreSQL: each customer's preferences, brand template overrides
 * and the delivery record of every message (outbound_messages, one row per dedupe key).
 */
import crypto from 'node:crypto';
import type { Db } from '../infra/db';
import type { MessageSource } from '../domain/communication';
import type { CommunicationRequest, MessageCategory } from '../workflows/shared';

export type MessageChannel = 'email' | 'webhook';
export type MessageStatus = 'queued' | 'waiting_quiet_hours' | 'sending' | 'sent' | 'suppressed' | 'failed';

export interface CommunicationPreferences {
  optedOut: MessageCategory[];
  /** null: the brand policy's default zone. */
  timeZone: string | null;
  channel: MessageChannel;
  webhookUrl: string | null;
  webhookSecret: string | null;
  updatedAt: string | null;
}

const DEFAULT_PREFERENCES: CommunicationPreferences = { optedOut: [], timeZone: null, channel: 'email', webhookUrl: null, webhookSecret: null, updatedAt: null };

interface PreferencesRow {
  opted_out: string[];
  time_zone: string | null;
  channel: MessageChannel;
  webhook_url: string | null;
  webhook_secret: string | null;
  updated_at: Date;
}

function preferencesFromRow(row: PreferencesRow): CommunicationPreferences {
  return {
    optedOut: row.opted_out as MessageCategory[],
    timeZone: row.time_zone,
    channel: row.channel,
    webhookUrl: row.webhook_url,
    webhookSecret: row.webhook_secret,
    updatedAt: row.updated_at.toISOString(),
  };
}

/** A customer's preferences; defaults (email, nothing opted out) until they set any. */
export async function getPreferences(db: Db, brandId: string, customerId: string): Promise<CommunicationPreferences> {
  const row = await db('communication_preferences').where({ brand_id: brandId, customer_id: customerId }).first();
  return row ? preferencesFromRow(row) : { ...DEFAULT_PREFERENCES };
}

export interface PreferencesChange {
  optedOut: MessageCategory[];
  timeZone: string | null;
  channel: MessageChannel;
  webhookUrl: string | null;
}

/**
 * Replaces a customer's (already validated) preferences. The webhook signing secret is made
 * with the first webhook URL and kept afterwards, so a receiver's verification keeps working.
 */
export async function putPreferences(db: Db, brandId: string, customerId: string, change: PreferencesChange): Promise<CommunicationPreferences> {
  const { rows } = await db.raw(
    `INSERT INTO communication_preferences (brand_id, customer_id, opted_out, time_zone, channel, webhook_url, webhook_secret, updated_at)
     VALUES (?, ?, ?::text[], ?, ?, ?, CASE WHEN ?::text IS NULL THEN NULL ELSE ?::text END, now())
     ON CONFLICT (brand_id, customer_id) DO UPDATE SET
       opted_out = EXCLUDED.opted_out, time_zone = EXCLUDED.time_zone, channel = EXCLUDED.channel,
       webhook_url = EXCLUDED.webhook_url,
       webhook_secret = COALESCE(communication_preferences.webhook_secret, EXCLUDED.webhook_secret),
       updated_at = now()
     RETURNING *`,
    [brandId, customerId, [...new Set(change.optedOut)].sort(), change.timeZone, change.channel, change.webhookUrl, change.webhookUrl, newWebhookSecret()],
  );
  return preferencesFromRow(rows[0]);
}

function newWebhookSecret(): string {
  return `whsec_${crypto.randomBytes(24).toString('base64url')}`;
}

export interface MessageRecord {
  id: string;
  brandId: string;
  customerId: string;
  dedupeKey: string;
  category: string;
  template: string;
  recipient: string;
  channel: MessageChannel;
  status: MessageStatus;
  reason: string | null;
  error: string | null;
  attempts: number;
  subject: string | null;
  messageId: string | null;
  workflowId: string | null;
  data: Record<string, unknown>;
  createdAt: string;
  scheduledFor: string | null;
  sentAt: string | null;
  updatedAt: string;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

// knex rows are untyped; this is the one place that reads an outbound_messages row.
function recordFromRow(row: Record<string, any>): MessageRecord {
  return {
    id: String(row.id),
    brandId: row.brand_id,
    customerId: row.customer_id,
    dedupeKey: row.dedupe_key,
    category: row.category,
    template: row.template,
    recipient: row.recipient,
    channel: row.channel,
    status: row.status,
    reason: row.reason,
    error: row.error,
    attempts: row.attempts,
    subject: row.subject,
    messageId: row.message_id,
    workflowId: row.workflow_id,
    data: row.data ?? {},
    createdAt: row.created_at.toISOString(),
    scheduledFor: iso(row.scheduled_for),
    sentAt: iso(row.sent_at),
    updatedAt: row.updated_at.toISOString(),
  };
}

/**
 * Records a message request once per dedupe key and returns the record as stored: a request
 * repeated after the first was decided finds the first one's outcome.
 */
export async function recordMessageRequest(db: Db, req: CommunicationRequest, opts: { workflowId: string; channel: MessageChannel }): Promise<MessageRecord> {
  await db('outbound_messages')
    .insert({
      brand_id: req.brandId,
      customer_id: req.customerId,
      dedupe_key: req.dedupeKey,
      category: req.category,
      template: req.template,
      recipient: req.recipient,
      data: JSON.stringify(req.data),
      channel: opts.channel,
      workflow_id: opts.workflowId,
    })
    .onConflict(['brand_id', 'dedupe_key'])
    .ignore();
  const row = await db('outbound_messages').where({ brand_id: req.brandId, dedupe_key: req.dedupeKey }).first();
  return recordFromRow(row);
}

export async function getMessage(db: Db, brandId: string, dedupeKey: string): Promise<MessageRecord | null> {
  const row = await db('outbound_messages').where({ brand_id: brandId, dedupe_key: dedupeKey }).first();
  return row ? recordFromRow(row) : null;
}

/** Statuses after which a message is never sent again. */
export const FINAL_STATUSES: readonly MessageStatus[] = ['sent', 'suppressed'];

/**
 * Moves an undecided message on (suppressed, waiting, failed…); a message already sent or
 * suppressed keeps its outcome. Returns whether the row changed.
 */
export async function updateMessage(
  db: Db,
  brandId: string,
  dedupeKey: string,
  change: Partial<{ status: MessageStatus; reason: string | null; error: string | null; channel: MessageChannel; scheduledFor: Date | null; workflowId: string }>,
): Promise<boolean> {
  const columns: Record<string, unknown> = { updated_at: db.fn.now() };
  if (change.status !== undefined) columns.status = change.status;
  if (change.reason !== undefined) columns.reason = change.reason;
  if (change.error !== undefined) columns.error = change.error;
  if (change.channel !== undefined) columns.channel = change.channel;
  if (change.scheduledFor !== undefined) columns.scheduled_for = change.scheduledFor;
  if (change.workflowId !== undefined) columns.workflow_id = change.workflowId;
  const n = await db('outbound_messages').where({ brand_id: brandId, dedupe_key: dedupeKey }).whereNotIn('status', FINAL_STATUSES).update(columns);
  return n > 0;
}

/**
 * Claims a message for one send attempt: counts the attempt and marks it sending, unless it
 * was already sent (or suppressed). A send that crashed before being marked leaves "sending",
 * which the next attempt claims again.
 */
export async function claimMessage(db: Db, brandId: string, dedupeKey: string): Promise<MessageRecord | null> {
  const rows = await db('outbound_messages')
    .where({ brand_id: brandId, dedupe_key: dedupeKey })
    .whereNotIn('status', FINAL_STATUSES)
    .update({ status: 'sending', attempts: db.raw('attempts + 1'), updated_at: db.fn.now() })
    .returning('*');
  return rows[0] ? recordFromRow(rows[0]) : null;
}

export async function markSent(db: Db, brandId: string, dedupeKey: string, sent: { subject: string; messageId: string; channel: MessageChannel }): Promise<void> {
  await db('outbound_messages')
    .where({ brand_id: brandId, dedupe_key: dedupeKey })
    .update({ status: 'sent', subject: sent.subject, message_id: sent.messageId, channel: sent.channel, sent_at: db.fn.now(), error: null, updated_at: db.fn.now() });
}

/** Newest first; `before` is the id of the last message of the previous page. */
export async function listCustomerMessages(db: Db, brandId: string, customerId: string, opts: { limit: number; before?: string }): Promise<MessageRecord[]> {
  const q = db('outbound_messages').where({ brand_id: brandId, customer_id: customerId });
  if (opts.before !== undefined) q.andWhere('id', '<', opts.before);
  const rows = await q.orderBy('id', 'desc').limit(opts.limit);
  return rows.map(recordFromRow);
}

/** The brand's customer, or null: other brands' customers do not exist here. */
export async function findCustomer(db: Db, brandId: string, customerId: string): Promise<{ email: string; name: string | null } | null> {
  const row = await db('customers').where({ brand_id: brandId, id: customerId }).first('email', 'name');
  return row ? { email: row.email, name: row.name } : null;
}

export interface BrandTemplate extends MessageSource {
  template: string;
  version: number;
  updatedAt: string;
}

function templateFromRow(row: { template: string; subject: string; text: string; html: string; version: number; updated_at: Date }): BrandTemplate {
  return { template: row.template, subject: row.subject, text: row.text, html: row.html, version: row.version, updatedAt: row.updated_at.toISOString() };
}

export async function getBrandTemplate(db: Db, brandId: string, template: string): Promise<BrandTemplate | null> {
  const row = await db('message_templates').where({ brand_id: brandId, template }).first();
  return row ? templateFromRow(row) : null;
}

/** Stores a brand's (validated) version of a template: version 1, then the next on every change. */
export async function putBrandTemplate(db: Db, brandId: string, template: string, source: MessageSource): Promise<BrandTemplate> {
  await db.raw(
    `INSERT INTO message_templates (brand_id, template, subject, text, html, version, updated_at)
     VALUES (?, ?, ?, ?, ?, 1, now())
     ON CONFLICT (brand_id, template) DO UPDATE
       SET subject = EXCLUDED.subject, text = EXCLUDED.text, html = EXCLUDED.html,
           version = message_templates.version + 1, updated_at = now()
       WHERE (message_templates.subject, message_templates.text, message_templates.html) IS DISTINCT FROM (EXCLUDED.subject, EXCLUDED.text, EXCLUDED.html)`,
    [brandId, template, source.subject, source.text, source.html],
  );
  return (await getBrandTemplate(db, brandId, template)) as BrandTemplate;
}

/** The templates the brand wrote itself, by name. */
export async function listBrandTemplates(db: Db, brandId: string): Promise<BrandTemplate[]> {
  const rows = await db('message_templates').where({ brand_id: brandId }).orderBy('template');
  return rows.map(templateFromRow);
}
