/**
 * Outbound email over SMTP (nodemailer). Loopback servers (the dev/test sink) are spoken to in
 * plain SMTP without auth; any other host gets STARTTLS when it offers it.
 */
import nodemailer from 'nodemailer';

export interface MailerOptions {
  host: string;
  port: number;
  /** Sender address, e.g. "billing@closeloop.local" or "Demo Co <billing@demo.example>". */
  from: string;
}

export interface OutgoingMail {
  to: string | string[];
  subject: string;
  text: string;
  html?: string;
  attachments?: Array<{ filename: string; content: Buffer | string; contentType?: string }>;
  /**
   * A stable id for this message (e.g. "invoice-<id>-ready"), so a retried send carries the same
   * Message-ID header and the copies are recognisable as one message. Bare ids get the sender's
   * domain; "<local@domain>" is used as is.
   */
  messageId?: string;
}

export interface Mailer {
  send(mail: OutgoingMail): Promise<{ messageId: string }>;
  close(): void;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1|\[::1\])$/i;

/** The domain of an address such as "Name <local@domain>" or "local@domain". */
function domainOf(address: string): string {
  const m = /@([^>\s]+)>?\s*$/.exec(address);
  return m?.[1] ?? 'closeloop.local';
}

export function messageIdHeader(id: string, from: string): string {
  const trimmed = id.trim();
  if (/^<[^<>\s@]+@[^<>\s@]+>$/.test(trimmed)) return trimmed;
  if (/^[^<>\s@]+@[^<>\s@]+$/.test(trimmed)) return `<${trimmed}>`;
  // Whatever a caller uses as a key becomes a valid left-hand side (RFC 5322 dot-atom).
  const local = trimmed.replace(/[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+/g, '-').replace(/^\.+|\.+$/g, '').replace(/\.{2,}/g, '.');
  if (!local) throw new RangeError(`messageId "${id}" has nothing usable in a Message-ID`);
  return `<${local}@${domainOf(from)}>`;
}

export function createMailer(options: MailerOptions): Mailer {
  const loopback = LOOPBACK.test(options.host);
  const transport = nodemailer.createTransport({
    host: options.host,
    port: options.port,
    secure: false,
    ignoreTLS: loopback,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 30_000,
  });
  return {
    async send(mail) {
      const info = await transport.sendMail({
        from: options.from,
        to: mail.to,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        attachments: mail.attachments,
        messageId: mail.messageId === undefined ? undefined : messageIdHeader(mail.messageId, options.from),
      });
      return { messageId: info.messageId };
    },
    close() {
      transport.close();
    },
  };
}
