/** Shared wiring for the gateway suites: a webhook receiver, the sandbox's control endpoint, waiting. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { SandboxChargeView } from '../../gateway/sandbox-server';

export const SECRET = 'whsec_test_sandbox_secret';

/** Unique per call: idempotency keys and token suffixes, so tests never share gateway state. */
export function unique(prefix: string): string {
  return `${prefix}_${crypto.randomBytes(6).toString('hex')}`;
}

export async function waitUntil<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every charge the sandbox holds, through its test-control endpoint. */
export async function sandboxCharges(baseUrl: string): Promise<SandboxChargeView[]> {
  const res = await fetch(`${baseUrl}/v1/_sandbox/charges`);
  if (!res.ok) throw new Error(`GET /v1/_sandbox/charges answered ${res.status}`);
  return ((await res.json()) as { data: SandboxChargeView[] }).data;
}

export async function chargesWithKey(baseUrl: string, idempotencyKey: string): Promise<SandboxChargeView[]> {
  return (await sandboxCharges(baseUrl)).filter((c) => c.idempotency_key === idempotencyKey);
}

export interface Delivery {
  rawBody: Buffer;
  headers: http.IncomingHttpHeaders;
  eventId: string;
  type: string;
}

export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  /** Status codes for the next deliveries, in order; afterwards 200. */
  failNext(...statuses: number[]): void;
  waitFor(what: string, match: (d: Delivery) => boolean, timeoutMs?: number): Promise<Delivery>;
  stop(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: Delivery[] = [];
  const planned: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks);
      const parsed = JSON.parse(rawBody.toString('utf8')) as { id: string; type: string };
      deliveries.push({ rawBody, headers: req.headers, eventId: parsed.id, type: parsed.type });
      res.statusCode = planned.shift() ?? 200;
      res.end();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks/gateway`,
    deliveries,
    failNext: (...statuses) => planned.push(...statuses),
    waitFor: (what, match, timeoutMs) => waitUntil(`webhook ${what}`, () => deliveries.find(match), timeoutMs),
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

export function tempDir(): { dir: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-gateway-'));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
