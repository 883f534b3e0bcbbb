/**
 * One declaration per endpoint: the same zod schemas validate the request at the edge and
 * describe it in /v1/openapi.json, so the document and the checks never drift.
 */
import { extendZodWithOpenApi, OpenAPIRegistry, OpenApiGeneratorV3 } from '@asteasolutions/zod-to-openapi';
import type { Request, Response, Router } from 'express';
import { z } from 'zod';
import type { Brand } from './auth';
import { invalidFields, validationError } from './errors';

extendZodWithOpenApi(z);

export { z };

type Method = 'get' | 'post' | 'put' | 'delete';

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** The media type `schema` describes; JSON unless the handler writes another itself. */
  contentType?: string;
}

export interface RouteSpec<B extends z.ZodType, P extends z.ZodType, Q extends z.ZodType, H extends z.ZodType = z.ZodUndefined> {
  method: Method;
  /** Express-style path, e.g. `/v1/customers/:id`. */
  path: string;
  summary: string;
  tag: string;
  /** false for health and metrics endpoints. */
  auth?: boolean;
  body?: B;
  params?: P;
  query?: Q;
  /**
   * Request headers the route reads (e.g. `Idempotency-Key`), keyed by their lower-case
   * names; a non-strict object, since every request carries other headers too.
   */
  headers?: H;
  responses: Record<number, ResponseSpec>;
  handler: (ctx: {
    body: z.infer<B>;
    params: z.infer<P>;
    query: z.infer<Q>;
    headers: z.infer<H>;
    brand: Brand;
    req: Request;
    res: Response;
  }) => Promise<{ status: number; body: unknown; headers?: Record<string, string> } | void>;
}

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.unknown(),
    }),
  })
  .openapi('Error');

/** The route pattern a request matched, for logs and metric labels (bounded cardinality). */
export function routeOf(req: Request, res: Response): string {
  if (typeof res.locals.route === 'string') return res.locals.route;
  return req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
}

/** The one wire shape of money in the API: `{ amount: "12.34", currency: "USD", minor: 1234 }`. */
export const MoneySchema = z
  .object({ amount: z.string(), currency: z.string(), minor: z.number().int() })
  .openapi('Money', { description: 'amount as an exact decimal string, minor as integer minor units' });

export class Api {
  readonly registry = new OpenAPIRegistry();

  /** `router` is mounted at `prefix`; route specs carry full paths for the document. */
  constructor(
    private readonly router: Router,
    private readonly prefix = '',
  ) {
    this.registry.registerComponent('securitySchemes', 'apiKey', { type: 'http', scheme: 'bearer' });
  }

  route<
    B extends z.ZodType = z.ZodUndefined,
    P extends z.ZodType = z.ZodUndefined,
    Q extends z.ZodType = z.ZodUndefined,
    H extends z.ZodType = z.ZodUndefined,
  >(spec: RouteSpec<B, P, Q, H>): void {
    const auth = spec.auth ?? true;
    const responses: Record<string, { description: string; content?: Record<string, { schema: z.ZodType }> }> = {};
    for (const [status, r] of Object.entries(spec.responses)) {
      responses[status] = r.schema
        ? { description: r.description, content: { [r.contentType ?? 'application/json']: { schema: r.schema } } }
        : { description: r.description };
    }
    if (spec.body || spec.params || spec.query || spec.headers) {
      responses['400'] ??= { description: 'Invalid request; details name each bad field', content: { 'application/json': { schema: ErrorSchema } } };
    }
    if (auth) responses['401'] ??= { description: 'Missing or unknown API key', content: { 'application/json': { schema: ErrorSchema } } };
    this.registry.registerPath({
      method: spec.method,
      path: spec.path.replace(/:([A-Za-z_]+)/g, '{$1}'),
      summary: spec.summary,
      tags: [spec.tag],
      security: auth ? [{ apiKey: [] }] : [],
      request: {
        ...(spec.params ? { params: spec.params as never } : {}),
        ...(spec.query ? { query: spec.query as never } : {}),
        ...(spec.headers ? { headers: spec.headers as never } : {}),
        ...(spec.body ? { body: { content: { 'application/json': { schema: spec.body } }, required: true } } : {}),
      },
      responses,
    });

    if (!spec.path.startsWith(this.prefix)) throw new Error(`${spec.path} is outside ${this.prefix}`);
    this.router[spec.method](spec.path.slice(this.prefix.length) || '/', async (req, res, next) => {
      res.locals.route = spec.path;
      try {
        const parse = <T extends z.ZodType>(where: string, schema: T | undefined, value: unknown): z.infer<T> => {
          if (!schema) return undefined as z.infer<T>;
          let result: z.ZodSafeParseResult<z.infer<T>>;
          try {
            result = schema.safeParse(value) as z.ZodSafeParseResult<z.infer<T>>;
          } catch {
            // A refinement that assumed its fields were already valid (and threw on a malformed
            // one) is still the client's bad input: a 400, never a 500.
            throw invalidFields([{ field: where, message: 'malformed value' }]);
          }
          if (!result.success) throw validationError(where, result.error);
          return result.data;
        };
        const params = parse('params', spec.params, req.params);
        const query = parse('query', spec.query, req.query);
        const body = parse('body', spec.body, req.body);
        const headers = parse('header', spec.headers, req.headers);
        const out = await spec.handler({ body, params, query, headers, brand: req.brand as Brand, req, res });
        if (!out) return;
        for (const [k, v] of Object.entries(out.headers ?? {})) res.setHeader(k, v);
        res.status(out.status).json(out.body);
      } catch (err) {
        next(err);
      }
    });
  }

  openApiDocument(): unknown {
    return new OpenApiGeneratorV3(this.registry.definitions).generateDocument({
      openapi: '3.0.3',
      info: {
        title: 'Closeloop API',
        version: '1.0.0',
        description: 'Customer lifecycle and billing. Money is `{ amount, currency, minor }`; errors are `{ error: { code, message, details } }`.',
      },
      servers: [{ url: '/' }],
    });
  }
}
