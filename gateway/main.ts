/**
 * The sandbox payment gateway as a process of its own (`node dist/gateway/main.js`), configured
 * by SANDBOX_GATEWAY_PORT, SANDBOX_GATEWAY_HOST, SANDBOX_WEBHOOK_URL, SANDBOX_WEBHOOK_SECRET,
 * SANDBOX_STATE_FILE, SANDBOX_TIMEOUT_DELAY_MS and SANDBOX_CHARGEBACK_AFTER_MS.
 */
import path from 'node:path';
import { ConfigError } from '../infra/config';
import { createLogger } from '../infra/logger';
import { stateDir } from '../infra/paths';
import { type SandboxGateway, type SandboxGatewayOptions, startSandboxGateway } from './sandbox-server';

/** Only for sandbox brands on a developer's machine; any real deployment sets its own. */
export const DEV_SANDBOX_WEBHOOK_SECRET = 'whsec_sandbox_dev_only';

export type SandboxGatewayConfig = Required<Pick<SandboxGatewayOptions, 'port' | 'host' | 'webhookSecret' | 'stateFile' | 'timeoutDelayMs' | 'chargebackAfterMs'>> &
  Pick<SandboxGatewayOptions, 'webhookUrl'>;

function nonNegativeInt(env: NodeJS.ProcessEnv, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > max) throw new ConfigError(`${name} must be an integer from 0 to ${max}, got "${raw}"`);
  return Number(raw);
}

export function loadSandboxGatewayConfig(env: NodeJS.ProcessEnv = process.env): SandboxGatewayConfig {
  const webhookUrl = env.SANDBOX_WEBHOOK_URL?.trim() || undefined;
  if (webhookUrl && !/^https?:\/\/\S+$/.test(webhookUrl)) throw new ConfigError(`SANDBOX_WEBHOOK_URL must be an http(s) URL, got "${webhookUrl}"`);
  return {
    port: nonNegativeInt(env, 'SANDBOX_GATEWAY_PORT', 4242, 65535),
    host: env.SANDBOX_GATEWAY_HOST?.trim() || '127.0.0.1',
    webhookUrl,
    webhookSecret: env.SANDBOX_WEBHOOK_SECRET?.trim() || DEV_SANDBOX_WEBHOOK_SECRET,
    stateFile: path.resolve(env.SANDBOX_STATE_FILE?.trim() || path.join(stateDir(env), 'sandbox-gateway.json')),
    timeoutDelayMs: nonNegativeInt(env, 'SANDBOX_TIMEOUT_DELAY_MS', 35_000),
    chargebackAfterMs: nonNegativeInt(env, 'SANDBOX_CHARGEBACK_AFTER_MS', 10_000),
  };
}

/** Starts the sandbox gateway and stops it on SIGINT/SIGTERM. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<SandboxGateway> {
  const config = loadSandboxGatewayConfig(env);
  const logger = createLogger(env.LOG_LEVEL ?? 'info', 'sandbox-gateway');
  const gateway = await startSandboxGateway({ ...config, logger });
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'stopping the sandbox gateway');
    void gateway.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return gateway;
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err instanceof ConfigError ? `configuration error: ${err.message}` : err);
    process.exit(1);
  });
}
