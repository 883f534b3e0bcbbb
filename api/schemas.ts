/** Request schema pieces shared by several routes. */
import { z } from './route';

/**
 * A flat object of string/number/boolean values with constrained keys (lead attributes, usage
 * properties). zod drops a `__proto__` key before any key check runs, so it is refused up front
 * rather than silently lost.
 */
export function flatRecord(opts: { key: RegExp; keyMessage: string; maxString: number; valueMessage: string; maxKeys: number; what: string }) {
  return z.preprocess(
    (value, ctx) => {
      if (value !== null && typeof value === 'object' && Object.hasOwn(value, '__proto__')) {
        ctx.addIssue({ code: 'custom', path: ['__proto__'], message: 'a reserved key', input: value });
      }
      return value;
    },
    z
      .record(z.string().regex(opts.key, opts.keyMessage), z.union([z.string().max(opts.maxString), z.number(), z.boolean()], { error: opts.valueMessage }))
      .refine((o) => Object.keys(o).length <= opts.maxKeys, `at most ${opts.maxKeys} ${opts.what}`),
  );
}
