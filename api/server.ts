/** Starts an HTTP server for the app and closes it cleanly. */
import http from 'node:http';
import type { Express } from 'express';

export async function listen(app: Express, port: number, host: string): Promise<{ server: http.Server; url: string; close(): Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as { port: number };
  return {
    server,
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
