/**
 * A loopback SMTP server that accepts every message and only counts it. The benchmarks send
 * thousands of invoice emails with PDFs; the project's SMTP sink parses and keeps each one,
 * which would spend the benchmark's CPU and memory on the mail server instead of the system
 * under test.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface NullSmtp {
  host: string;
  port: number;
  received(): number;
  stop(): Promise<void>;
}

export async function startNullSmtp(): Promise<NullSmtp> {
  let count = 0;
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    logger: false,
    onData(stream, _session, callback) {
      stream.on('data', () => undefined);
      stream.on('error', callback);
      stream.on('end', () => {
        count += 1;
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const port = (server.server.address() as AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    received: () => count,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
