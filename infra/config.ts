/**
 * The one place the environment is read. Every setting has a default that makes `npm start`
 * work on a fresh machine; every default can be overridden. Bad values fail fast, naming the
 * variable.
 */
import path from 'node:path';
import { stateDir } from './paths';

export interface Config {
  /** Where embedded services keep their data. */
  stateDir: string;
  /** Set when PostgreSQL is external; unset means "start the embedded server". */
  databaseUrl?: string;
  embeddedPostgresPort?: number;
  /** Set when Temporal is external; unset means "start the dev server" (npm start only). */
  temporalAddress?: string;
  temporalNamespace: string;
  temporalDevPort: number;
  temporalUiPort: number;
  taskQueue: string;
  apiPort: number;
  apiHost: string;
  logLevel: string;
  /** Set when mail goes to an external SMTP server; unset means "start the loopback sink" (npm start). */
  smtpHost?: string;
  /** The port of SMTP_HOST (default 25), or the port the loopback sink prefers (default 2525). */
  smtpPort: number;
  /** Base URL customers reach the API at, for links in emails (PUBLIC_URL). */
  publicUrl: string;
  /** Signs the invoice links in emails (LINK_SIGNING_SECRET); worker and API must share it. */
  linkSecret?: string;
  /** Sender of outbound email. */
  mailFrom: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(`${name} must be a TCP port number (0-65535), got "${raw}"`);
  }
  return n;
}

function optional(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function linkSecret(env: NodeJS.ProcessEnv): string | undefined {
  const secret = optional(env, 'LINK_SIGNING_SECRET');
  if (secret !== undefined && secret.length < 32) throw new ConfigError('LINK_SIGNING_SECRET must be at least 32 characters');
  return secret;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const databaseUrl = optional(env, 'DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const logLevel = optional(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const temporalDevPort = port(env, 'TEMPORAL_DEV_PORT', 7233);
  const smtpHost = optional(env, 'SMTP_HOST');
  const mailFrom = optional(env, 'MAIL_FROM') ?? 'billing@closeloop.local';
  if (!/^[^@\s<>]+@[^@\s<>]+$|<[^@\s<>]+@[^@\s<>]+>$/.test(mailFrom)) {
    throw new ConfigError(`MAIL_FROM must be an email address such as billing@example.com or "Billing <billing@example.com>", got "${mailFrom}"`);
  }
  return {
    stateDir: stateDir(env),
    databaseUrl,
    embeddedPostgresPort: env.EMBEDDED_PG_PORT ? port(env, 'EMBEDDED_PG_PORT', 0) : undefined,
    temporalAddress: optional(env, 'TEMPORAL_ADDRESS'),
    temporalNamespace: optional(env, 'TEMPORAL_NAMESPACE') ?? 'default',
    temporalDevPort,
    temporalUiPort: port(env, 'TEMPORAL_UI_PORT', 8233),
    taskQueue: optional(env, 'TEMPORAL_TASK_QUEUE') ?? 'closeloop',
    apiPort: port(env, 'PORT', 3000),
    apiHost: optional(env, 'HOST') ?? '127.0.0.1',
    logLevel,
    smtpHost,
    smtpPort: port(env, 'SMTP_PORT', smtpHost ? 25 : 2525),
    mailFrom,
    linkSecret: linkSecret(env),
    publicUrl: (optional(env, 'PUBLIC_URL') ?? `http://${optional(env, 'HOST') ?? '127.0.0.1'}:${port(env, 'PORT', 3000)}`).replace(/\/$/, ''),
  };
}

/** For `npm run worker` / `npm run api`: production processes never start embedded services. */
export function requireExternal(config: Config, names: Array<'DATABASE_URL' | 'TEMPORAL_ADDRESS'>): void {
  const missing = names.filter((n) => (n === 'DATABASE_URL' ? !config.databaseUrl : !config.temporalAddress));
  if (missing.length > 0) {
    throw new ConfigError(
      `${missing.join(' and ')} must be set for this process (use \`npm start\` to run everything on embedded defaults)`,
    );
  }
}

export const pathsFor = (config: Config) => ({
  postgresData: path.join(config.stateDir, 'postgres'),
  temporalDb: path.join(config.stateDir, 'temporal.sqlite'),
  devApiKey: path.join(config.stateDir, 'dev-api-key'),
  /** Written while `npm start` runs, so scripts can reach its embedded database. */
  runtime: path.join(config.stateDir, 'runtime.json'),
});
