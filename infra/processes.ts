/** Child processes started by `npm start` and the integration tests, stopped cleanly. */
import { ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

export function canConnect(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} before it was ready`);
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} was not ready within ${Math.round(timeoutMs / 1000)} s`);
}

export interface TemporalDevServerOptions {
  cliPath: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** SQLite file; state survives restarts. */
  dbFilename?: string;
  searchAttributes: string[];
  onOutput?: (line: string) => void;
}

export interface RunningProcess {
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<RunningProcess> {
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(opts.port),
    '--ui-port', String(opts.uiPort),
    '--namespace', opts.namespace,
    '--log-level', 'warn',
    ...(opts.dbFilename ? ['--db-filename', opts.dbFilename] : []),
    ...opts.searchAttributes.flatMap((sa) => ['--search-attribute', `${sa}=Keyword`]),
  ];
  // Its own process group: Ctrl-C reaches `npm start`, which stops services in order.
  const child = spawn(opts.cliPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = (chunk: Buffer) => opts.onOutput?.(chunk.toString('utf8'));
  child.stdout?.on('data', out);
  child.stderr?.on('data', out);
  const running: RunningProcess = { child, stop: () => stopChild(child) };
  try {
    await waitFor('Temporal dev server', () => canConnect(opts.port), 60_000, child);
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}

/** Asks a child to stop with `signal`, and kills it if it has not exited after `graceMs`. */
export function stopChild(child: ChildProcess, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}
