/**
 * A real SMTP server on 127.0.0.1 that accepts every message and keeps it: the mail server of
 * `npm start` and the tests, so outbound email is sent for real and can be read back. Messages
 * are parsed (mailparser) and kept in memory; with `dir`, each is also written as an .eml file
 * that any mail client opens.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { simpleParser, type AddressObject } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  /** Header From address. */
  from: string;
  /** Header To addresses. */
  to: string[];
  subject: string;
  text: string;
  html: string;
  /** The Message-ID header, angle brackets included. */
  messageId: string;
  /** Attachment file names, in order. */
  attachments: string[];
  /** SMTP envelope, which may differ from the headers (Bcc). */
  envelope: { from: string; to: string[] };
  receivedAt: Date;
  /** The message as received. */
  raw: Buffer;
  /** Where the .eml copy was written, when the sink has a `dir`. */
  file?: string;
}

export interface SmtpSinkOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Folder for .eml copies; created when missing. */
  dir?: string;
  /** Largest accepted message in bytes (default 25 MiB). */
  maxSize?: number;
}

export interface SmtpSink {
  host: string;
  port: number;
  dir?: string;
  messages(): ReceivedMail[];
  /** The first message (already received or still to come) that matches, or a rejection after `timeoutMs`. */
  waitFor(predicate: (mail: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  /** Forgets the messages kept in memory (the .eml files stay). */
  clear(): void;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

function addresses(value: AddressObject | AddressObject[] | undefined): string[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return list.flatMap((a) => a.value.map((v) => v.address ?? '').filter(Boolean));
}

const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 80);

export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const received: ReceivedMail[] = [];
  const waiters = new Set<(mail: ReceivedMail) => void>();
  let sequence = 0;
  if (options.dir) fs.mkdirSync(options.dir, { recursive: true });

  const keep = async (raw: Buffer, envelope: ReceivedMail['envelope']): Promise<void> => {
    const parsed = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
    const mail: ReceivedMail = {
      from: addresses(parsed.from)[0] ?? '',
      to: addresses(parsed.to),
      subject: parsed.subject ?? '',
      text: parsed.text ?? '',
      html: typeof parsed.html === 'string' ? parsed.html : '',
      messageId: parsed.messageId ?? '',
      attachments: parsed.attachments.map((a) => a.filename ?? ''),
      envelope,
      receivedAt: new Date(),
      raw,
    };
    if (options.dir) {
      sequence += 1;
      const stamp = mail.receivedAt.toISOString().replace(/[:.]/g, '-');
      // Retried sends share a Message-ID; the sequence keeps every copy.
      const file = path.join(options.dir, `${stamp}-${String(sequence).padStart(4, '0')}-${fileSafe(mail.messageId) || 'message'}.eml`);
      await fs.promises.writeFile(file, raw);
      mail.file = file;
    }
    received.push(mail);
    for (const notify of [...waiters]) notify(mail);
  };

  const server = new SMTPServer({
    name: 'closeloop-smtp-sink',
    banner: 'Closeloop SMTP sink: every message is accepted and kept',
    // Loopback only, for dev and tests: no TLS to negotiate, no accounts to log in to.
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    size: options.maxSize ?? 25 * 1024 * 1024,
    rejectOversized: true,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', callback);
      stream.on('end', () => {
        const envelope = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
        };
        keep(Buffer.concat(chunks), envelope).then(
          () => callback(),
          (err: Error) => callback(err),
        );
      });
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // A broken client connection must not take the process down with it.
  server.on('error', () => undefined);
  const port = (server.server.address() as AddressInfo).port;

  return {
    host: HOST,
    port,
    dir: options.dir,
    messages: () => [...received],
    waitFor(predicate, timeoutMs = 10_000) {
      const already = received.find(predicate);
      if (already) return Promise.resolve(already);
      return new Promise<ReceivedMail>((resolve, reject) => {
        const settle = (fn: () => void) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          fn();
        };
        const waiter = (mail: ReceivedMail) => {
          try {
            if (predicate(mail)) settle(() => resolve(mail));
          } catch (err) {
            settle(() => reject(err));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching message within ${timeoutMs} ms (${received.length} received: ${received.map((m) => JSON.stringify(m.subject)).join(', ') || 'none'})`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    clear() {
      received.length = 0;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
