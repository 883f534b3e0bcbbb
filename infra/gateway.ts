/**
 * Which payment gateway the worker talks to: Stripe when STRIPE_SECRET_KEY is set, otherwise the
 * sandbox gateway at GATEWAY_URL (started by `npm start` and the tests when unset).
 */
import type { PaymentGateway } from '../gateway/adapter';
import { DEV_SANDBOX_WEBHOOK_SECRET } from '../gateway/main';
import { createSandboxGateway } from '../gateway/sandbox-client';
import { createStripeGateway, stripeOptionsFromEnv } from '../gateway/stripe';
import { ConfigError } from './config';

export function gatewayFromEnv(env: NodeJS.ProcessEnv, sandboxUrl?: string): PaymentGateway {
  if (env.STRIPE_SECRET_KEY?.trim()) return createStripeGateway(stripeOptionsFromEnv(env));
  const baseUrl = env.GATEWAY_URL?.trim() || sandboxUrl;
  if (!baseUrl) throw new ConfigError('GATEWAY_URL (the sandbox gateway) or STRIPE_SECRET_KEY must be set for the worker');
  return createSandboxGateway({
    baseUrl,
    webhookSecret: env.SANDBOX_WEBHOOK_SECRET?.trim() || DEV_SANDBOX_WEBHOOK_SECRET,
    timeoutMs: Number(env.GATEWAY_TIMEOUT_MS ?? 10_000),
  });
}
