/**
 * The communication workflow's side effects: record and decide a message (preferences,
 * opt-out, de-duplication), then render and deliver it by email or signed webhook, once.
 */
import crypto from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import {
  claimMessage,
  getBrandTemplate,
  getPreferences,
  markSent,
  MessageChannel,
  MessageRecord,
  FINAL_STATUSES,
  recordMessageRequest,
  updateMessage,
} from '../data/communications';
import { loadInvoiceDocument } from '../data/invoices';
import { getPolicy } from '../data/policies';
import { CommunicationErrors, isOptedOut, isValidTimeZone, QuietHours, renderMessage, TemplateSyntaxError } from '../domain/communication';
import type { InvoiceDocument } from '../domain/invoice-document';
import type { Db } from '../infra/db';
import type { Mailer, OutgoingMail } from '../infra/mailer';
import { INVOICE_LINK_LIFETIME_MS, signInvoiceLink } from '../infra/signed-links';
import { documentTitle, formatDate, formatMoney, formatPeriod } from '../presentment/format';
import { invoiceEmail } from '../presentment/invoice-email';
import { messageVars, resolveTemplate } from '../presentment/templates';
import type { CommunicationRequest } from '../workflows/shared';
import { SHARED_INVOICE_PATH } from './billing';

export interface CommunicationDeps {
  db: Db;
  mailer: Mailer;
  /** Base URL customers open links at (invoice links in messages). */
  publicUrl: string;
  /** Signs invoice links in messages (shared with the API). */
  linkSecret: string;
  /** How long a customer's webhook may take to answer. */
  webhookTimeoutMs?: number;
}

/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>` under the customer's webhook secret. */
export const WEBHOOK_SIGNATURE_HEADER = 'X-Closeloop-Signature';
/** The header naming the message, the same on every retry, for the receiver's de-duplication. */
export const WEBHOOK_DELIVERY_HEADER = 'X-Closeloop-Delivery';

export function webhookSignature(secret: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface PrepareMessageInput {
  request: CommunicationRequest;
  workflowId: string;
}

export type PreparedMessage =
  | { outcome: 'send'; channel: MessageChannel; timeZone: string; quietHours: QuietHours | null }
  | { outcome: 'suppressed' | 'duplicate'; reason: string };

export interface DeliveryResult {
  /** false when the message had already been sent (a retry after success). */
  sent: boolean;
  channel: MessageChannel;
  messageId: string | null;
}

interface ComposedMessage {
  subject: string;
  text: string;
  html: string;
  attachments?: OutgoingMail['attachments'];
}

/**
 * A stable id per message, the same on every retried send: the dedupe key made safe for a
 * Message-ID (so an operator reading headers recognises the event, e.g. the invoice id) and a
 * hash of brand and key, which keeps ids unique where the readable part was shortened.
 */
export function messageKey(brandId: string, dedupeKey: string): string {
  const readable = dedupeKey.replace(/[^A-Za-z0-9_-]+/g, '.').replace(/^\.+|\.+$/g, '').slice(0, 80).replace(/\.+$/, '');
  const hash = crypto.createHash('sha256').update(`${brandId}\0${dedupeKey}`).digest('hex').slice(0, 16);
  return readable ? `${readable}.${hash}` : hash;
}

/** SMTP reply codes 5xx are permanent: the same message to the same address fails again. */
function isPermanentSmtpError(err: unknown): boolean {
  const code = (err as { responseCode?: unknown }).responseCode;
  return typeof code === 'number' && code >= 500 && code < 600;
}

export function createCommunicationActivities({ db, mailer, publicUrl, linkSecret, webhookTimeoutMs = 10_000 }: CommunicationDeps) {
  const invoiceUrl = (brandId: string, invoiceId: string) => {
    const token = signInvoiceLink(linkSecret, { brandId, invoiceId }, new Date(Date.now() + INVOICE_LINK_LIFETIME_MS));
    return `${publicUrl.replace(/\/$/, '')}${SHARED_INVOICE_PATH}/${token}.html`;
  };

  function invoiceVars(doc: InvoiceDocument, viewUrl: string): Record<string, unknown> {
    return {
      number: doc.number,
      title: documentTitle(doc),
      amountDue: formatMoney(doc.amountDueMinor, doc.currency),
      total: formatMoney(doc.totalMinor, doc.currency),
      dueDate: formatDate(doc.dueAt),
      period: formatPeriod(doc.period.start, doc.period.end) ?? '',
      viewUrl,
    };
  }

  /** Renders the message: the brand's template, the library's, or the generic one of its category. */
  async function compose(record: MessageRecord, channel: MessageChannel): Promise<ComposedMessage> {
    const [brand, customer, override] = await Promise.all([
      db('brands').where({ id: record.brandId }).first('name'),
      db('customers').where({ brand_id: record.brandId, id: record.customerId }).first('name'),
      getBrandTemplate(db, record.brandId, record.template),
    ]);
    let data = record.data;
    let attachments: OutgoingMail['attachments'];
    const invoiceId = record.template === 'invoice-ready' && typeof data.invoiceId === 'string' ? data.invoiceId : null;
    if (invoiceId) {
      const doc = await loadInvoiceDocument(db, record.brandId, invoiceId);
      if (!doc) throw ApplicationFailure.nonRetryable(`invoice ${invoiceId} not found`, CommunicationErrors.INVOICE_MISSING);
      const viewUrl = invoiceUrl(record.brandId, invoiceId);
      // The invoice email proper (lines, totals, PDF) unless the brand wrote its own; a webhook
      // carries the library's short version with the link, and no PDF.
      if (!override && channel === 'email') return invoiceEmail(doc, { viewUrl });
      data = { ...data, ...invoiceVars(doc, viewUrl) };
      if (channel === 'email') attachments = (await invoiceEmail(doc, { viewUrl })).attachments;
    }
    const { source } = resolveTemplate(record.template, record.category as CommunicationRequest['category'], override);
    const vars = messageVars({ brandName: brand?.name ?? record.brandId, customerName: customer?.name ?? null, email: record.recipient, data });
    try {
      return { ...renderMessage(source, vars), attachments };
    } catch (err) {
      if (err instanceof TemplateSyntaxError) throw ApplicationFailure.nonRetryable(`template "${record.template}": ${err.message}`, CommunicationErrors.TEMPLATE_INVALID);
      throw err;
    }
  }

  async function sendWebhook(record: MessageRecord, message: ComposedMessage, url: string, secret: string, deliveryId: string): Promise<void> {
    const body = JSON.stringify({
      id: deliveryId,
      type: 'customer.message',
      brandId: record.brandId,
      customerId: record.customerId,
      dedupeKey: record.dedupeKey,
      category: record.category,
      template: record.template,
      subject: message.subject,
      text: message.text,
      html: message.html,
      data: record.data,
      requestedAt: record.createdAt,
    });
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(secret, body), [WEBHOOK_DELIVERY_HEADER]: deliveryId },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(webhookTimeoutMs),
      });
      await res.arrayBuffer();
    } catch (err) {
      throw ApplicationFailure.retryable(`webhook ${url} unreachable: ${(err as Error).message}`, CommunicationErrors.WEBHOOK_UNAVAILABLE);
    }
    if (res.status >= 200 && res.status < 300) return;
    const answer = `webhook ${url} answered ${res.status}`;
    if (res.status === 408 || res.status === 429 || res.status >= 500) throw ApplicationFailure.retryable(answer, CommunicationErrors.WEBHOOK_UNAVAILABLE);
    throw ApplicationFailure.nonRetryable(answer, CommunicationErrors.WEBHOOK_REJECTED);
  }

  return {
    /**
     * Records the request (once per dedupe key) and decides it: a duplicate of a message
     * already sent or suppressed, suppressed by the customer's opt-out, or to be sent, with
     * the channel, time zone and quiet hours the workflow needs to time it.
     */
    async prepareMessage({ request, workflowId }: PrepareMessageInput): Promise<PreparedMessage> {
      const [policy, prefs] = await Promise.all([getPolicy(db, request.brandId, 'communication'), getPreferences(db, request.brandId, request.customerId)]);
      const channel: MessageChannel = prefs.channel === 'webhook' && prefs.webhookUrl ? 'webhook' : 'email';
      const record = await recordMessageRequest(db, request, { workflowId, channel });
      // This very workflow suppressed it already (a retry of this activity): the same answer again.
      if (record.status === 'suppressed' && record.workflowId === workflowId) return { outcome: 'suppressed', reason: record.reason ?? 'suppressed' };
      if (FINAL_STATUSES.includes(record.status)) return { outcome: 'duplicate', reason: `already ${record.status}` };
      if (isOptedOut(request.category, prefs.optedOut, policy.document.optOutAllowed)) {
        const reason = `opted_out:${request.category}`;
        await updateMessage(db, request.brandId, request.dedupeKey, { status: 'suppressed', reason, workflowId });
        return { outcome: 'suppressed', reason };
      }
      await updateMessage(db, request.brandId, request.dedupeKey, { channel, workflowId });
      // A zone that stopped being valid (policy zones are free text) must not block the message.
      const timeZone = [prefs.timeZone, policy.document.defaultTimeZone].find((z): z is string => !!z && isValidTimeZone(z)) ?? 'UTC';
      return { outcome: 'send', channel, timeZone, quietHours: policy.document.quietHours };
    },

    /** The message waits out the customer's quiet hours until `until` (workflow time). */
    async recordQuietHoursWait({ brandId, dedupeKey, until }: { brandId: string; dedupeKey: string; until: string }): Promise<void> {
      await updateMessage(db, brandId, dedupeKey, { status: 'waiting_quiet_hours', scheduledFor: new Date(until) });
    },

    /**
     * Renders and sends the message. The record is claimed before sending and marked sent
     * after, so an attempt after a successful one sends nothing; a crash between the send and
     * the mark resends once, with the same Message-ID (email) or delivery id (webhook).
     */
    async deliverMessage({ brandId, dedupeKey }: { brandId: string; dedupeKey: string }): Promise<DeliveryResult> {
      const record = await claimMessage(db, brandId, dedupeKey);
      if (!record) {
        const existing = await db('outbound_messages').where({ brand_id: brandId, dedupe_key: dedupeKey }).first('status', 'channel', 'message_id');
        if (!existing) throw ApplicationFailure.nonRetryable(`no message ${dedupeKey}`, CommunicationErrors.MESSAGE_MISSING);
        return { sent: false, channel: existing.channel, messageId: existing.message_id };
      }
      const prefs = await getPreferences(db, brandId, record.customerId);
      const channel: MessageChannel = prefs.channel === 'webhook' && prefs.webhookUrl && prefs.webhookSecret ? 'webhook' : 'email';
      const key = messageKey(brandId, dedupeKey);
      try {
        const message = await compose(record, channel);
        let messageId: string;
        if (channel === 'webhook') {
          await sendWebhook(record, message, prefs.webhookUrl as string, prefs.webhookSecret as string, key);
          messageId = key;
        } else {
          try {
            ({ messageId } = await mailer.send({ to: record.recipient, subject: message.subject, text: message.text, html: message.html, attachments: message.attachments, messageId: key }));
          } catch (err) {
            if (isPermanentSmtpError(err)) throw ApplicationFailure.nonRetryable(`SMTP refused: ${(err as Error).message}`, CommunicationErrors.RECIPIENT_REJECTED);
            throw err;
          }
        }
        await markSent(db, brandId, dedupeKey, { subject: message.subject, messageId, channel });
        return { sent: true, channel, messageId };
      } catch (err) {
        // Visible to operators while the workflow retries; the claim is released for the next attempt.
        await updateMessage(db, brandId, dedupeKey, { status: 'queued', error: (err as Error).message, channel });
        throw err;
      }
    },

    /** Every attempt failed (or one could not be retried): the message is recorded as failed. */
    async markMessageFailed({ brandId, dedupeKey, error }: { brandId: string; dedupeKey: string; error: string }): Promise<void> {
      await updateMessage(db, brandId, dedupeKey, { status: 'failed', error });
    },
  };
}

export type CommunicationActivities = ReturnType<typeof createCommunicationActivities>;
