/**
 * The one error shape of the API: `{ error: { code, message, details } }`. Client mistakes are
 * 4xx naming the field; only our own faults are 5xx.
 */
import type { ErrorRequestHandler } from 'express';
import { z } from 'zod';
import type { Logger } from '../infra/logger';

export interface FieldProblem {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown = undefined,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const notFound = (what: string) => new ApiError(404, 'NOT_FOUND', `${what} not found`);

/** Turns zod issues into `[{ field: "body.email", message }]`. */
export function fieldProblems(where: string, error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [undefined];
    return keys.map((extra) => ({
      field: [where, ...issue.path.map(String), ...(extra ? [extra] : [])].join('.'),
      message: extra ? 'unknown field' : issue.message,
    }));
  }).flat();
}

export function validationError(where: string, error: z.ZodError): ApiError {
  return invalidFields(fieldProblems(where, error));
}

/** The 400 for problems found beyond the schema (they need the brand or the database). */
export function invalidFields(details: FieldProblem[]): ApiError {
  const fields = [...new Set(details.map((d) => d.field))];
  return new ApiError(400, 'VALIDATION_FAILED', `invalid ${fields.join(', ')}`, details);
}

interface BodyParserError {
  type?: string;
  status?: number;
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let apiError: ApiError;
    const parserError = err as BodyParserError;
    if (err instanceof ApiError) {
      apiError = err;
    } else if (parserError?.type === 'entity.parse.failed') {
      apiError = new ApiError(400, 'INVALID_JSON', 'request body is not valid JSON', [{ field: 'body', message: 'malformed JSON' }]);
    } else if (parserError?.type === 'entity.too.large') {
      apiError = new ApiError(413, 'PAYLOAD_TOO_LARGE', 'request body is too large', [{ field: 'body', message: 'too large' }]);
    } else if (typeof parserError?.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
      apiError = new ApiError(parserError.status, 'BAD_REQUEST', String((err as Error).message ?? 'bad request'));
    } else if (isDatabaseUnavailable(err)) {
      // Not the client's fault and not a bug: PostgreSQL is restarting or unreachable.
      log.warn({ err, method: req.method, path: req.path }, 'database unavailable');
      res.setHeader('Retry-After', '5');
      apiError = new ApiError(503, 'UNAVAILABLE', 'the database is unavailable; retry shortly');
    } else {
      log.error({ err, method: req.method, path: req.path }, 'unhandled error');
      apiError = new ApiError(500, 'INTERNAL', 'internal error');
    }
    if (res.headersSent) return;
    res.status(apiError.status).json({
      error: { code: apiError.code, message: apiError.message, details: apiError.details ?? null },
    });
  };
}

/** Connection refused or reset, or PostgreSQL shutting down / starting up (SQLSTATE class 57P). */
function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    /Connection terminated|Knex: Timeout acquiring a connection/.test(String((err as Error)?.message ?? ''))
  );
}
