/**
 * Fault injection for the fault suite (`npm run test:faults`). TEST-ONLY: production never sets
 * `CLOSELOOP_FAULT`, and without it `faultPoint` does nothing (one environment lookup).
 *
 * A fault point is a named place in the code where a crash hurts, e.g. `after-gateway-charge`
 * in collections: the gateway has taken the money, Closeloop has not yet recorded it. A test
 * starts a worker process with
 *
 *   CLOSELOOP_FAULT=<name>      kill the process at the first hit of <name>
 *   CLOSELOOP_FAULT=<name>:<N>  kill it at the N-th hit of <name> in this process (N ≥ 1)
 *
 * and the process dies there with SIGKILL: a real crash, no finally blocks, no shutdown hooks, no
 * flushed buffers, no activity failure reported to Temporal — exactly what a machine losing
 * power or an OOM kill looks like. One line naming the point goes to stderr first (written
 * synchronously), so a test can tell the injected kill from an accidental one.
 */
import fs from 'node:fs';

export const FAULT_ENV = 'CLOSELOOP_FAULT';

/** The fault points that exist in the code, for documentation and for tests. */
export const FAULT_POINTS = [
  /** collections: the gateway accepted the charge, the payment is not recorded yet. */
  'after-gateway-charge',
  /** billing: inside finalize's database transaction, usage claimed and the invoice number taken, not committed. */
  'during-invoice-finalize',
  /** billing: the invoice is committed, the finalize activity has not reported it to Temporal. */
  'after-invoice-finalized',
  /** presentment: the invoice email went out, the outbox row is not marked sent. */
  'after-invoice-email-sent',
] as const;
export type FaultPointName = (typeof FAULT_POINTS)[number];

export interface FaultSpec {
  name: string;
  /** Kill only at this hit (1-based); undefined: at the first. */
  hit?: number;
}

/** Parses `name` or `name:N`; a malformed value is an error, so a typo cannot silently disable a fault test. */
export function parseFaultSpec(raw: string): FaultSpec {
  const m = /^([a-z0-9][a-z0-9-]*)(?::(\d+))?$/.exec(raw.trim());
  if (!m || (m[2] !== undefined && Number(m[2]) < 1)) {
    throw new Error(`${FAULT_ENV} must be "<fault point>" or "<fault point>:<N>" with N ≥ 1, got "${raw}"`);
  }
  return { name: m[1]!, hit: m[2] === undefined ? undefined : Number(m[2]) };
}

const hits = new Map<string, number>();

/** Kills this process with SIGKILL when `CLOSELOOP_FAULT` names this point (and hit); otherwise nothing. */
export function faultPoint(name: FaultPointName): void {
  const raw = process.env[FAULT_ENV];
  if (!raw) return;
  const spec = parseFaultSpec(raw);
  if (spec.name !== name) return;
  const hit = (hits.get(name) ?? 0) + 1;
  hits.set(name, hit);
  if (hit !== (spec.hit ?? 1)) return;
  try {
    fs.writeSync(2, `closeloop fault injection: SIGKILL at ${name} (hit ${hit}), pid ${process.pid}\n`);
  } catch {
    // stderr closed: kill anyway
  }
  process.kill(process.pid, 'SIGKILL');
}
