/**
 * A loopback HTTP proxy in front of the sandbox gateway that the fault suite switches between
 * behaviours while the worker charges through it:
 *   pass         forward, answer what the gateway answered
 *   unavailable  answer 503 without forwarding (an outage: nothing happened at the gateway)
 *   hang         forward (the gateway acts: a charge is made), then hold the answer until the
 *                client gives up (a timeout after the fact: the nastiest case for idempotency)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ProxyMode = 'pass' | 'unavailable' | 'hang';

export interface GatewayProxy {
  url: string;
  mode: ProxyMode;
  /** Requests seen per mode. */
  readonly counts: Record<ProxyMode, number>;
  stop(): Promise<void>;
}

export async function startGatewayProxy(targetUrl: string): Promise<GatewayProxy> {
  const target = new URL(targetUrl);
  const held = new Set<http.ServerResponse>();
  const proxy: GatewayProxy = {
    url: '',
    mode: 'pass',
    counts: { pass: 0, unavailable: 0, hang: 0 },
    async stop() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const server = http.createServer((req, res) => {
    const mode = proxy.mode;
    proxy.counts[mode] += 1;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (mode === 'unavailable') {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { type: 'api_error', message: 'gateway outage (fault proxy)' } }));
        return;
      }
      const headers = { ...req.headers, host: target.host };
      const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (up) => {
        const body: Buffer[] = [];
        up.on('data', (c: Buffer) => body.push(c));
        up.on('end', () => {
          if (mode === 'hang') {
            // The gateway did the work; its answer never reaches the client.
            held.add(res);
            res.on('close', () => held.delete(res));
            setTimeout(() => res.destroy(), 60_000).unref();
            return;
          }
          res.writeHead(up.statusCode ?? 502, up.headers).end(Buffer.concat(body));
        });
      });
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
