/**
 * What every benchmark shares: one embedded PostgreSQL in a temporary folder (removed after),
 * migrated; a loopback SMTP server that only counts messages (see null-smtp.ts); the sandbox gateway; the real workflow bundle, built once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { Activities, createActivities } from '../activities';
import { createSandboxGateway } from '../gateway/sandbox-client';
import { SandboxGateway, startSandboxGateway } from '../gateway/sandbox-server';
import { createDb, Db, migrateLatest } from '../infra/db';
import { createMailer } from '../infra/mailer';
import { EmbeddedPostgresHandle, startEmbeddedPostgres } from '../infra/postgres';
import { WORKFLOWS_PATH } from '../workers/worker';
import { NullSmtp, startNullSmtp } from './null-smtp';

export const WEBHOOK_SECRET = 'whsec_bench';

export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export interface BenchInfra {
  url: string;
  db: Db;
  mail: NullSmtp;
  /** The temporary folder (removed by stop()). */
  tmp: string;
  sandbox: SandboxGateway;
  bundle: WorkflowBundleWithSourceMap;
  activities(db: Db): Activities;
  stop(): Promise<void>;
}

const noop = () => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };

export async function startInfra(): Promise<BenchInfra> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-bench-'));
  fs.chmodSync(tmp, 0o755);
  let pg: EmbeddedPostgresHandle | undefined;
  let sink: NullSmtp | undefined;
  let sandbox: SandboxGateway | undefined;
  let db: Db | undefined;
  const stop = async () => {
    await db?.destroy().catch(noop);
    await sink?.stop().catch(noop);
    await sandbox?.stop().catch(noop);
    await pg?.stop().catch(noop);
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    progress('starting embedded PostgreSQL (temporary data dir) and bundling the workflows…');
    const bundlePromise = bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
    pg = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), database: 'closeloop_bench' });
    db = createDb(pg.url, { poolMax: 10 });
    await migrateLatest(db);
    sink = await startNullSmtp();
    sandbox = await startSandboxGateway({ port: 0, webhookSecret: WEBHOOK_SECRET });
    const bundle = await bundlePromise;
    const s = sink;
    const gw = sandbox;
    return {
      url: pg.url,
      db,
      mail: sink,
      tmp,
      sandbox,
      bundle,
      activities: (forDb) =>
        createActivities({
          db: forDb,
          mailer: createMailer({ host: s.host, port: s.port, from: 'billing@closeloop.bench' }),
          publicUrl: 'http://127.0.0.1:3000',
          linkSecret: 'bench-link-signing-secret-0123456789abcdef',
          gateway: createSandboxGateway({ baseUrl: gw.url, webhookSecret: WEBHOOK_SECRET, timeoutMs: 5_000 }),
        }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

type HistoryEvent = NonNullable<temporal.api.history.v1.IHistory['events']>[number];

/**
 * The steps a workflow run took, from its history: activity tasks by name, local activities (a
 * `core_local_activity` marker) as `name (local)`, child workflows as `child <type>`.
 */
export function stepsOf(events: HistoryEvent[]): string[] {
  const steps: string[] = [];
  for (const e of events) {
    const activity = e.activityTaskScheduledEventAttributes?.activityType?.name;
    const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name;
    const marker = e.markerRecordedEventAttributes;
    if (activity) steps.push(activity);
    else if (child) steps.push(`child ${child}`);
    else if (marker?.markerName === 'core_local_activity') {
      const data = marker.details?.data?.payloads?.[0]?.data;
      const type = data ? (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type : undefined;
      steps.push(`${type ?? 'local activity'} (local)`);
    }
  }
  return steps;
}
