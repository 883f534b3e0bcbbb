/** The Express app: health, metrics, OpenAPI, and the authenticated v1 routes. */
import crypto from 'node:crypto';
import type { Client } from '@temporalio/client';
import express, { Express } from 'express';
import type { PaymentGateway } from '../gateway/adapter';
import type { Db } from '../infra/db';
import { ping } from '../infra/db';
import type { Logger } from '../infra/logger';
import { requireApiKey } from './auth';
import { registerCustomerRoutes } from './customers';
import { registerDisputeRoutes } from './disputes';
import { registerSubscriptionRoutes } from './subscriptions';
import { createSharedInvoiceRouter } from './shared-invoices';
import { registerInvoiceRoutes } from './invoices';
import { registerTaxRoutes } from './tax';
import { registerLeadRoutes } from './leads';
import { registerAnalyticsRoutes } from './analytics';
import { registerPlanRoutes } from './plans';
import { registerPolicyRoutes } from './policies';
import { registerCommunicationRoutes } from './communications';
import { registerOfferRoutes } from './offers';
import { registerUsageRoutes } from './usage';
import { registerReconciliationRoutes } from './reconciliation';
import { registerPaymentRoutes } from './payments';
import { createWebhookRouter, documentWebhookRoute, WEBHOOK_PATH } from './webhooks';
import { ApiError, errorHandler } from './errors';
import { createMetrics } from './metrics';
import { Api, routeOf } from './route';

export interface AppDeps {
  temporal: Client;
  db: Db;
  logger: Logger;
  config: { taskQueue: string };
  /** Collect process metrics (off in tests that build many apps). */
  defaultMetrics?: boolean;
  queryTimeoutMs?: number;
  /** Refunds and webhook verification; without one those routes answer 503. */
  gateway?: PaymentGateway;
  /** Verifies the signed invoice links in emails (shared with the worker). */
  linkSecret?: string;
}

const READINESS_TIMEOUT_MS = 2_000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function createApp(deps: AppDeps): Express {
  const { db, temporal, logger } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  const metrics = createMetrics({ defaultMetrics: deps.defaultMetrics });

  app.use((req, res, next) => {
    const requestId = req.get('x-request-id') ?? crypto.randomUUID();
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      logger.info(
        {
          requestId,
          method: req.method,
          path: req.originalUrl.split('?')[0],
          route: routeOf(req, res),
          status: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
          brand: req.brand?.id,
        },
        'request',
      );
    });
    next();
  });
  app.use(metrics.middleware);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const check = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await withTimeout(fn(), READINESS_TIMEOUT_MS, what);
        return { ok: true };
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
    };
    const [database, temporalCheck] = await Promise.all([
      check('database', () => ping(db)),
      check('temporal', () => temporal.workflowService.getSystemInfo({})),
    ]);
    const ready = database.ok && temporalCheck.ok;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks: { database, temporal: temporalCheck } });
  });
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });

  // Gateway webhooks are authenticated by their signature over the raw body, so they are routed
  // ahead of the JSON parser and the API key check.
  app.use(WEBHOOK_PATH, createWebhookRouter({ db, temporal, gateway: deps.gateway, logger }));

  const v1 = express.Router();
  const api = new Api(v1, '/v1');
  // Usage batches carry up to 10,000 events; every other body is small.
  v1.use('/customers/:id/usage', express.json({ limit: '16mb', strict: true }));
  v1.use(express.json({ limit: '1mb', strict: true }));
  // The document is public so client generators can fetch it without a key.
  v1.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  // Signed invoice links from emails: the signature is the credential.
  v1.use('/shared/invoices', createSharedInvoiceRouter({ db, linkSecret: deps.linkSecret }));
  v1.use(requireApiKey(db));
  registerCustomerRoutes(api, { temporal, db, taskQueue: deps.config.taskQueue, queryTimeoutMs: deps.queryTimeoutMs });
  registerSubscriptionRoutes(api, { temporal, db });
  registerReconciliationRoutes(api, { db });
  registerPaymentRoutes(api, { db, gateway: deps.gateway });
  documentWebhookRoute(api);
  registerInvoiceRoutes(api, { db });
  registerDisputeRoutes(api, { temporal, db });
  registerTaxRoutes(api, { db });
  registerUsageRoutes(api, { temporal, db, logger });
  registerLeadRoutes(api, { temporal, db, taskQueue: deps.config.taskQueue });
  registerAnalyticsRoutes(api, { db });
  registerPlanRoutes(api, { db });
  registerPolicyRoutes(api, { db });
  registerCommunicationRoutes(api, { db });
  registerOfferRoutes(api, { db });
  const document = api.openApiDocument();
  app.use('/v1', v1);

  app.use((req, _res, next) => {
    next(new ApiError(404, 'NOT_FOUND', `no route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler(logger));
  return app;
}
