/**
 * fast-check arbitraries for API fuzzing, derived from the served OpenAPI document: near-valid
 * values for a schema (so requests get past the first check and reach deeper code), and
 * hostile values and mutations (wrong types, extreme numbers, injection strings, prototype
 * keys, bad money formats) to break them with.
 */
import fc from 'fast-check';

export type Schema = Record<string, any>;
export type OpenApiDoc = { paths: Record<string, Record<string, any>>; components?: { schemas?: Record<string, Schema> } };

export function resolve(doc: OpenApiDoc, schema: Schema | undefined): Schema {
  let s = schema ?? {};
  for (let i = 0; i < 20 && typeof s.$ref === 'string'; i++) {
    const name = String(s.$ref).replace('#/components/schemas/', '');
    s = doc.components?.schemas?.[name] ?? {};
  }
  return s;
}

/** Strings that have broken other people's APIs. */
export const INJECTION_STRINGS = [
  "' OR '1'='1",
  "'; DROP TABLE customers; --",
  '" OR ""="',
  "1; SELECT pg_sleep(10)--",
  "') UNION SELECT key_hash FROM api_keys --",
  '../../../../etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
  '/dev/zero',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  '${7*7}',
  '{{7*7}}',
  '#{7*7}',
  '$(reboot)',
  '`id`',
  '\u0000',
  'a\u0000b',
  '\r\nX-Injected: 1',
  '\ud800',
  '\uffff',
  '\u202e',
  'ǅ'.repeat(300),
  '🙂'.repeat(600),
  ' ',
  '',
  'null',
  'undefined',
  'true',
  '[]',
  '{}',
  '%s%s%s%n',
  'x'.repeat(70_000),
] as const;

/** Numbers and number-ish strings at and beyond every edge. */
export const NUMBERISH = [
  0,
  -0,
  -1,
  -1e-9,
  0.1,
  0.30000000000000004,
  1e-7,
  1e21,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  Number.MIN_SAFE_INTEGER,
  2 ** 31,
  2 ** 63,
  -(2 ** 63),
  1.5,
  'NaN',
  'Infinity',
  '-Infinity',
  '1e309',
  '1e-400',
  '0x1F',
  '0b101',
  '0o17',
  '1_000',
  '+1',
  '-1',
  '-0',
  '00012',
  '9'.repeat(400),
  '1'.repeat(40),
  ' 12 ',
  '12 ',
  '1.2.3',
  '١٢٣',
  '１２',
] as const;

/** Money as people get it wrong. */
export const BAD_MONEY = [
  '12,34',
  '1,234.56',
  '12.345',
  '12.34567',
  '$12.34',
  '12.34 USD',
  'USD 12.34',
  '-12.34',
  '−12.34',
  '.5',
  '5.',
  '12.3.4',
  '1e3',
  '99999999999999.99',
  '9999999999999999999999',
  '0.00000000000001',
  '12.34e0',
  ' 12.34',
  '١٢.٣٤',
  '12٫34',
  '0x10',
  'NaN',
  '',
] as const;

export const hostileScalar: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<unknown>(...INJECTION_STRINGS) },
  { weight: 4, arbitrary: fc.constantFrom<unknown>(...NUMBERISH) },
  { weight: 3, arbitrary: fc.constantFrom<unknown>(...BAD_MONEY) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>(null, true, false, [], {}, [[]], [null], { '': '' }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40, unit: 'binary' }) },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((b) => Number(b)) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);

/** Keys for fields the schema does not have, prototype keys among them. */
export const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'isAdmin', 'brand_id', 'brandId', 'id', 'amount_minor', 'status', '', ' ', '$where', 'a.b', '0'),
  fc.string({ minLength: 1, maxLength: 12 }),
);

function isoDate(d: Date): string {
  return d.toISOString().slice(0, 10);
}

const patternCache = new Map<string, fc.Arbitrary<string> | undefined>();

/** Strings matching an OpenAPI pattern (built once per pattern: some take long to compile). */
function patternArb(pattern: string): fc.Arbitrary<string> | undefined {
  if (!patternCache.has(pattern)) patternCache.set(pattern, buildPatternArb(pattern));
  return patternCache.get(pattern);
}

function buildPatternArb(pattern: string): fc.Arbitrary<string> | undefined {
  // Some patterns carry a JavaScript flag suffix in the document, e.g. "^…$/u".
  const flags = pattern.endsWith('/u') ? 'u' : '';
  const source = flags ? pattern.slice(0, -2) : pattern;
  try {
    const re = new RegExp(source, flags);
    const arb = fc.stringMatching(re);
    fc.sample(arb, 1); // fails here if fast-check cannot generate from it
    return arb.filter((s) => re.test(s));
  } catch {
    return undefined;
  }
}

const validCache = new WeakMap<object, fc.Arbitrary<unknown>>();

/** Values the schema accepts, mostly: good enough to get past validation and into the handler. */
export function validArb(doc: OpenApiDoc, schema0: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema0 || depth > 0) return buildValidArb(doc, schema0, depth);
  let arb = validCache.get(schema0);
  if (!arb) validCache.set(schema0, (arb = buildValidArb(doc, schema0, depth)));
  return arb;
}

function buildValidArb(doc: OpenApiDoc, schema0: Schema | undefined, depth: number): fc.Arbitrary<unknown> {
  const schema = resolve(doc, schema0);
  if (depth > 6) return fc.constant(null);
  const withExample = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
    schema.example !== undefined ? fc.oneof({ weight: 1, arbitrary: fc.constant(schema.example) }, { weight: 1, arbitrary: arb }) : arb;
  if (Array.isArray(schema.enum) && schema.enum.length) return fc.constantFrom(...schema.enum);
  for (const k of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(schema[k]) && schema[k].length) return withExample(fc.oneof(...schema[k].map((s: Schema) => validArb(doc, s, depth + 1))));
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length) {
    const merged: Schema = { type: 'object', properties: {}, required: [] };
    for (const part of schema.allOf.map((s: Schema) => resolve(doc, s))) {
      Object.assign(merged.properties, part.properties ?? {});
      merged.required.push(...(part.required ?? []));
    }
    return validArb(doc, merged, depth + 1);
  }
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string': {
      if (schema.format === 'email') return withExample(fc.emailAddress().filter((e) => e.length <= (schema.maxLength ?? 254)));
      if (schema.format === 'date-time') return withExample(fc.integer({ min: -86_400_000, max: 60_000 }).map((d) => new Date(Date.now() + d).toISOString()));
      if (schema.format === 'date') return withExample(fc.integer({ min: -400, max: 30 }).map((d) => isoDate(new Date(Date.now() + d * 86_400_000))));
      if (typeof schema.pattern === 'string') {
        const arb = patternArb(schema.pattern);
        if (arb) return withExample(arb);
      }
      return withExample(fc.string({ minLength: Math.max(1, schema.minLength ?? 1), maxLength: Math.min(schema.maxLength ?? 30, 30) }));
    }
    case 'integer':
      return withExample(fc.integer({ min: Math.max(schema.minimum ?? 0, -1e6), max: Math.min(schema.maximum ?? 1000, 1e9) }));
    case 'number':
      return withExample(fc.integer({ min: 0, max: 1000 }));
    case 'boolean':
      return fc.boolean();
    case 'array': {
      const min = schema.minItems ?? 0;
      return withExample(fc.array(validArb(doc, schema.items, depth + 1), { minLength: min, maxLength: Math.max(min, Math.min(schema.maxItems ?? 3, 3)) }));
    }
    case 'object':
    default: {
      const props: Record<string, Schema> = schema.properties ?? {};
      const required = new Set<string>(schema.required ?? []);
      if (Object.keys(props).length === 0) {
        if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
          return withExample(fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/), validArb(doc, schema.additionalProperties, depth + 1), { maxKeys: 3 }));
        }
        return withExample(fc.constant({}));
      }
      const entries = Object.entries(props).map(([k, s]) => [k, validArb(doc, s, depth + 1)] as const);
      const recordArb = fc.record(Object.fromEntries(entries), { requiredKeys: [...required].filter((k) => k in props) });
      return withExample(recordArb);
    }
  }
}

type Path = Array<string | number>;

function paths(value: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(value)) value.slice(0, 5).forEach((v, i) => paths(v, [...at, i], out));
  else if (value && typeof value === 'object') for (const k of Object.keys(value)) paths((value as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v) ?? 'null') as T;
}

export type Mutation = { pick: number; action: 'replace' | 'delete' | 'unknown-key' | 'proto-key' | 'wrap-array' | 'repeat'; value: unknown; key: string };

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  pick: fc.nat(),
  action: fc.constantFrom('replace', 'replace', 'replace', 'delete', 'unknown-key', 'proto-key', 'wrap-array', 'repeat'),
  value: hostileScalar,
  key: hostileKey,
});

/** Applies mutations to a JSON value, defining keys as own properties (so "__proto__" survives JSON.stringify). */
export function mutate(value: unknown, mutations: Mutation[]): unknown {
  let root: unknown = clone(value === undefined ? {} : value);
  for (let m of mutations) {
    const all = paths(root);
    const at = all[m.pick % all.length]!;
    const parentPath = at.slice(0, -1);
    const last = at[at.length - 1];
    const get = (p: Path) => p.reduce<any>((o, k) => (o == null ? o : o[k]), root);
    const set = (p: Path, v: unknown) => {
      if (p.length === 0) root = v;
      else {
        const parent = get(p.slice(0, -1));
        if (parent && typeof parent === 'object') Object.defineProperty(parent, p[p.length - 1]!, { value: v, enumerable: true, writable: true, configurable: true });
      }
    };
    const target = get(at);
    m = { ...m, value: clone(m.value) }; // never the same object twice in the tree
    switch (m.action) {
      case 'replace':
        set(at, m.value);
        break;
      case 'delete':
        if (last !== undefined) {
          const parent = get(parentPath);
          if (Array.isArray(parent)) parent.splice(Number(last), 1);
          else if (parent && typeof parent === 'object') delete parent[last];
        }
        break;
      case 'unknown-key':
      case 'proto-key': {
        const obj = target && typeof target === 'object' && !Array.isArray(target) ? target : get(parentPath);
        const key = m.action === 'proto-key' ? '__proto__' : m.key;
        const v = m.action === 'proto-key' ? { isAdmin: true, polluted: m.value } : m.value;
        if (obj && typeof obj === 'object' && !Array.isArray(obj)) Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
        else set(at, { [key]: v });
        break;
      }
      case 'wrap-array':
        set(at, [target]);
        break;
      case 'repeat':
        // The same (sub)value many times: long arrays, duplicate ids.
        if (Array.isArray(target) && target.length) set(at, Array.from({ length: 300 }, () => clone(target[0])));
        else set(at, Array.from({ length: 50 }, () => clone(target ?? null)));
        break;
    }
  }
  return root;
}
