/** Structured JSON logs (pino) for every process. */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level = process.env.LOG_LEVEL ?? 'info', name = 'closeloop'): Logger {
  return pino({ name, level, base: { service: name } });
}
