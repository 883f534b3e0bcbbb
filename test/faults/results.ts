/**
 * Where the fault and fuzz suites leave their numbers for `npm run reliability`
 * (scripts/reliability-report.ts), which turns them into docs/reliability.md. One JSON file per
 * suite, overwritten by each run; RELIABILITY_RESULTS_DIR moves them (default
 * `.closeloop/reliability/`, git-ignored with the rest of the local state).
 */
import fs from 'node:fs';
import path from 'node:path';
import { stateDir } from '../../infra/paths';

export function reliabilityResultsDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.RELIABILITY_RESULTS_DIR ?? path.join(stateDir(env), 'reliability'));
}

/** Writes `<dir>/<name>.json` with the run's time and the suite's numbers; returns the path. */
export function writeReliabilityResult(name: string, result: object): string {
  const dir = reliabilityResultsDir();
  fs.mkdirSync(dir, { recursive: true });
  // A run with a planted bug (RELIABILITY_PLANTED_BUG) must not replace the real numbers.
  const file = path.join(dir, process.env.RELIABILITY_PLANTED_BUG?.trim() ? `${name}.planted.json` : `${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ suite: name, finishedAt: new Date().toISOString(), ...result }, null, 2)}\n`);
  return file;
}

export function readReliabilityResult<T = Record<string, unknown>>(name: string): (T & { finishedAt: string }) | undefined {
  const file = path.join(reliabilityResultsDir(), `${name}.json`);
  if (!fs.existsSync(file)) return undefined;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T & { finishedAt: string };
}

/**
 * A deliberate-bug check: the run was made with a bug planted in the code (described by
 * RELIABILITY_PLANTED_BUG); the suite records whether it caught it (failed) and its first
 * problems, in planted-bugs.json (one entry per suite and bug, the latest run wins).
 */
export function recordPlantedBug(suite: string, caught: boolean, problems: string[]): void {
  const bug = process.env.RELIABILITY_PLANTED_BUG?.trim();
  if (!bug) return;
  const dir = reliabilityResultsDir();
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'planted-bugs.json');
  const all: Array<Record<string, unknown>> = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Array<Record<string, unknown>>) : [];
  const entry = { suite, bug, caught, at: new Date().toISOString(), problems: problems.length, firstProblems: problems.slice(0, 3).map((p) => p.slice(0, 400)) };
  const kept = all.filter((e) => !(e.suite === suite && e.bug === bug));
  fs.writeFileSync(file, `${JSON.stringify([...kept, entry], null, 2)}\n`);
}
