import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import fc from 'fast-check';
import { seedMeteredPlan, seedPlans } from '../support/fixtures';
import { eventually, startStack, type Stack } from '../support/stack';
import { uniqueId } from '../support/helpers';
import { recordPlantedBug, writeReliabilityResult } from '../faults/results';
import { changedTables, nextXid, snapshotTables, type Snapshot } from './db-snapshot';
import { hostileScalar, INJECTION_STRINGS, mutate, mutationArb, resolve, validArb, type OpenApiDoc, type Schema } from './openapi-arbitraries';

/**
 * Issue 7 item 3: property-based API fuzzing. The running API (real Express app, Temporal dev
 * server, worker, PostgreSQL) is asked for /v1/openapi.json, and EVERY operation in it is sent
 * hostile requests generated with fast-check: near-valid bodies from the operation's own schema
 * with mutations (wrong types, huge / negative / NaN-ish numbers, unknown fields, `__proto__`
 * and `constructor` keys, injection strings, bad money formats), random JSON, malformed JSON,
 * invalid UTF-8, wrong content types, hostile path ids and query values, missing / malformed /
 * foreign API keys, oversized bodies. A new endpoint is fuzzed as soon as it is in the document.
 *
 * Asserted for every request:
 *   - the status is below 500, and the server answers (no hang, no dropped connection);
 *   - a rejected request (4xx) writes nothing: every table's row count and a 64-bit hash over
 *     all its rows (test/fuzz/db-snapshot.ts) are the same after the request as before it.
 *     Accepted requests may start workflows that write later; the suite waits for the database
 *     to go quiet after each of them, and a change seen after a rejection is confirmed by
 *     replaying the same request on a quiet database before it counts.
 *   - Object.prototype is never polluted by a `__proto__` body (the API runs in this process).
 *
 * Knobs: FUZZ_RUNS (generated requests per endpoint, default 30), FUZZ_SEED (replay a run; the
 * seed is printed). Numbers go to .closeloop/reliability/fuzz.json for `npm run reliability`.
 *
 * Verified to catch a write by a rejected request: see docs/reliability.md ("deliberate-bug checks").
 */

const RUNS = envInt('FUZZ_RUNS', 30);
const SEED = envInt('FUZZ_SEED', crypto.randomInt(1, 2 ** 31));

function envInt(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

interface Op {
  method: string;
  /** OpenAPI path template, e.g. /v1/customers/{id}. */
  template: string;
  params: Array<{ in: 'path' | 'query' | 'header'; name: string; schema: Schema; required?: boolean }>;
  body?: Schema;
  auth: boolean;
  /** Not in the OpenAPI document (signed links, health, unknown routes). */
  extra?: boolean;
}

interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  what: string;
}

interface Answer {
  status: number;
  text: string;
}

function send(base: URL, r: RawRequest, timeoutMs = 30_000): Promise<Answer> {
  return new Promise((resolvePromise, reject) => {
    const headers: Record<string, string> = { ...r.headers };
    if (r.body) headers['content-length'] = String(r.body.length);
    const req = http.request({ host: base.hostname, port: base.port, method: r.method, path: r.path, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8').slice(0, 2000) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may answer (413, 431) and close before it read an oversized request.
      reject(err);
    });
    if (r.body) req.end(r.body);
    else req.end();
  });
}

/** A header value node's http client will send: printable ASCII only. */
const headerSafe = (s: string) => s.replace(/[^\x20-\x7e]/g, '?');

/** encodeURIComponent, with lone surrogates (which it refuses) as U+FFFD. */
const enc = (s: string): string => encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));

const asText = (v: unknown): string => (typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v) ?? String(v));

function describeRequest(r: RawRequest): string {
  const body = r.body ? (r.body.length > 300 ? `${r.body.subarray(0, 300).toString('utf8')}… (${r.body.length} bytes)` : r.body.toString('utf8')) : '';
  const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, k === 'authorization' ? v.replace(/cl_(test|live)_\S+/, 'cl_$1_…') : v.slice(0, 120)]));
  return `${r.method} ${r.path.slice(0, 300)} [${r.what}] headers=${JSON.stringify(headers)} body=${body}`;
}

describe('API fuzzing: hostile requests against every endpoint of /v1/openapi.json (real stack)', function () {
  let stack: Stack;
  let base: URL;
  let brand: { id: string; key: string };
  let other: { id: string; key: string };
  const seeds: string[] = ['pro', 'metered', 'starter', 'offers', 'dunning', 'disputes', 'communication', 'acquisition'];
  /** Real ids by the collection a path names, so a hostile body mostly meets a real customer, invoice, …; other paths get every seed that fits the pattern. */
  const seedsByCollection: Record<string, string[]> = { plans: ['pro', 'metered', 'starter'], policies: ['offers', 'dunning', 'disputes', 'communication', 'acquisition'], customers: [], invoices: [], payments: [], leads: [] };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    base = new URL(stack.url);
    brand = await stack.brand({ name: 'Fuzz target' });
    other = await stack.brand({ name: 'Fuzz other tenant' });
    for (const b of [brand, other]) {
      await seedPlans(stack.db, b.id);
      await seedMeteredPlan(stack.db, b.id);
    }
    // Real ids, so hostile bodies also reach handlers behind an existing customer, invoice, payment.
    // A few, signed up together: when a fuzzed request cancels one, the next takes its place.
    const seeded = (await Promise.all([activeCustomer(), activeCustomer(), activeCustomer()])).filter((c) => c !== undefined);
    assert.ok(seeded.length > 0, 'the seeded customers sign up and become active');
    spareCustomers.push(...seeded.slice(1));
    const customerId = seeded[0]!.customerId;
    seeds.push(customerId, seeded[0]!.invoiceId);
    seedsByCollection.customers!.push(customerId);
    seedsByCollection.invoices!.push(seeded[0]!.invoiceId);
    const paymentId = await eventually(async () => (await stack.db('payments').where({ brand_id: brand.id, customer_id: customerId, status: 'succeeded' }).first('id'))?.id as string | undefined, 30_000);
    seeds.push(paymentId);
    seedsByCollection.payments!.push(paymentId);
    const lead = await stack.call('POST', '/v1/leads', { key: brand.key, body: { email: 'lead@example.com', source: 'google' } });
    if (lead.status < 300 && typeof lead.json?.id === 'string') {
      seeds.push(lead.json.id);
      seedsByCollection.leads!.push(lead.json.id);
    }
    const otherId = uniqueId('fzo');
    const otherSignup = await stack.call('POST', '/v1/customers', { key: other.key, body: { id: otherId, email: `${otherId}@example.com`, plan: 'pro', paymentMethod: 'tok_visa' } });
    if (otherSignup.status < 300) seeds.push(otherId); // the other tenant's customer: must be a 404 for `brand`
  });

  const spareCustomers: Array<{ customerId: string; invoiceId: string }> = [];

  /** Signs up a customer on the metered plan and waits until it is active with its opening invoice. */
  async function activeCustomer(): Promise<{ customerId: string; invoiceId: string } | undefined> {
    const customerId = uniqueId('fz');
    const signup = await stack.call('POST', '/v1/customers', { key: brand.key, body: { id: customerId, email: `${customerId}@example.com`, plan: 'metered', paymentMethod: 'tok_visa' } });
    if (signup.status >= 300) {
      process.stdout.write(`      warning: could not sign up a seed customer: ${signup.status} ${signup.text.slice(0, 200)}\n`);
      return undefined;
    }
    try {
      const invoiceId = await eventually(async () => (await stack.db('invoices').where({ brand_id: brand.id, customer_id: customerId }).first('id'))?.id as string | undefined, 30_000);
      await eventually(async () => (await stack.db('customers').where({ brand_id: brand.id, id: customerId }).first('stage'))?.stage === 'active', 30_000);
      return { customerId, invoiceId };
    } catch {
      process.stdout.write(`      warning: seed customer ${customerId} did not become active\n`);
      return undefined;
    }
  }

  after(async function () {
    this.timeout(60_000);
    await stack?.stop();
  });

  it(`answers ${RUNS} generated hostile requests per endpoint (and fixed nasty ones) below 500, and a rejected one writes no row`, async function () {
    const res = await fetch(`${stack.url}/v1/openapi.json`);
    assert.equal(res.status, 200);
    const doc = (await res.json()) as OpenApiDoc;

    const ops: Op[] = [];
    for (const [template, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        if (!['get', 'post', 'put', 'delete', 'patch'].includes(method)) continue;
        ops.push({
          method: method.toUpperCase(),
          template,
          params: (op.parameters ?? []).map((p: any) => ({ in: p.in, name: String(p.name).toLowerCase() === p.name ? p.name : p.name, schema: p.schema ?? {}, required: p.required })),
          body: op.requestBody ? op.requestBody.content?.['application/json']?.schema ?? {} : undefined,
          auth: Array.isArray(op.security) && op.security.length > 0,
        });
      }
    }
    assert.ok(ops.length >= 20, `the document lists the API (${ops.length} operations)`);
    // Routes outside the document, fuzzed the same way.
    ops.push(
      { method: 'GET', template: '/v1/shared/invoices/{file}', params: [{ in: 'path', name: 'file', schema: { type: 'string' } }], auth: false, extra: true },
      { method: 'GET', template: '/readyz', params: [], auth: false, extra: true },
      { method: 'DELETE', template: '/v1/customers/{id}', params: [{ in: 'path', name: 'id', schema: { type: 'string' } }], auth: true, extra: true },
      { method: 'PATCH', template: '/v1/plans', params: [], body: { type: 'object' }, auth: true, extra: true },
    );

    const timeoutMs = 60_000 + ops.length * (RUNS + 12) * 400;
    this.timeout(timeoutMs);
    process.stdout.write(`      ${ops.length} operations (${ops.filter((o) => !o.extra).length} from /v1/openapi.json), ${RUNS} generated requests each + fixed cases (FUZZ_SEED=${SEED})\n`);

    const protoKeysBefore = Object.getOwnPropertyNames(Object.prototype).sort().join(',');

    // ---- the requests ------------------------------------------------------------------------
    // Near-valid requests: a well-formed request (the brand's key, a real id, JSON) with its body
    // mutated, and now and then one to three of its other parts made hostile, so most requests
    // get past the first check and the handlers' writes meet broken input.
    const PARTS = ['auth', 'path', 'query', 'headers', 'content-type', 'body-shape'] as const;
    type Part = (typeof PARTS)[number];
    const hostileParts: fc.Arbitrary<Part[]> = fc.oneof(
      { weight: 3, arbitrary: fc.constant<Part[]>([]) },
      { weight: 4, arbitrary: fc.constantFrom(...PARTS).map((p) => [p]) },
      { weight: 2, arbitrary: fc.uniqueArray(fc.constantFrom(...PARTS), { minLength: 2, maxLength: 3 }) },
    );
    const authArb = (op: Op, bad: boolean) =>
      !bad ? fc.constant(op.auth ? 'valid' : 'none') : op.auth ? fc.constantFrom('missing', 'garbage', 'other-brand', 'basic', 'huge', 'bearer-injection') : fc.constantFrom('garbage', 'other-brand');
    const authHeader = (kind: string): string | undefined => {
      switch (kind) {
        case 'valid':
          return `Bearer ${brand.key}`;
        case 'other-brand':
          return `Bearer ${other.key}`;
        case 'garbage':
          return `Bearer cl_test_${'A'.repeat(32)}`;
        case 'basic':
          return `Basic ${Buffer.from('admin:admin').toString('base64')}`;
        case 'huge':
          return `Bearer ${'x'.repeat(8000)}`;
        case 'bearer-injection':
          return "Bearer ' OR '1'='1";
        default:
          return undefined;
      }
    };

    /** The real ids for the path parameter `name` of `template`: by the collection it follows, else by pattern. */
    const seedsFor = (template: string, name: string, schema: Schema): string[] => {
      const collection = new RegExp(`/([a-z-]+)/\\{${name}\\}`).exec(template)?.[1];
      const typed = collection ? seedsByCollection[collection] : undefined;
      if (typed?.length) return typed;
      if (typeof schema.pattern !== 'string') return seeds;
      try {
        const re = new RegExp(schema.pattern.replace(/\/u$/, ''), schema.pattern.endsWith('/u') ? 'u' : '');
        return seeds.filter((s) => re.test(s));
      } catch {
        return seeds;
      }
    };

    const pathValueArb = (template: string, name: string, schema: Schema, bad: boolean): fc.Arbitrary<{ value: string; encode: boolean }> => {
      const matching = seedsFor(template, name, schema);
      if (!bad) {
        return fc.oneof(
          { weight: matching.length ? 5 : 0, arbitrary: matching.length ? fc.constantFrom(...matching).map((value) => ({ value, encode: true })) : fc.constant({ value: 'x', encode: true }) },
          { weight: 1, arbitrary: validArb(doc, schema).map((v) => ({ value: asText(v), encode: true })) },
        );
      }
      return fc.oneof(
        { weight: matching.length ? 4 : 0, arbitrary: matching.length ? fc.constantFrom(...matching).map((value) => ({ value, encode: true })) : fc.constant({ value: 'x', encode: true }) },
        { weight: 2, arbitrary: validArb(doc, schema).map((v) => ({ value: asText(v), encode: true })) },
        { weight: 3, arbitrary: hostileScalar.map((v) => ({ value: asText(v), encode: true })) },
        { weight: 1, arbitrary: fc.constantFrom('..', '.', '%', '%zz', '..%2f..%2fetc%2fpasswd', 'a%00b', '%2e%2e', 'x.html', 'x.pdf', 'x.json', 'x%2Fy').map((value) => ({ value, encode: false })) },
      );
    };

    const queryArb = (op: Op, bad: boolean) =>
      !bad
        ? fc.record({
            declared: fc.tuple(
              ...op.params.filter((p) => p.in === 'query').map((p) => fc.option(validArb(doc, p.schema).map((v) => [asText(v)]), { freq: 2 }).map((values) => ({ name: p.name, values }))),
            ),
            unknown: fc.constant(null as [string, unknown] | null),
          })
        : fc.record({
        declared: fc.tuple(
          ...op.params
            .filter((p) => p.in === 'query')
            .map((p) =>
              fc.option(
                fc.oneof(
                  validArb(doc, p.schema).map((v) => [asText(v)]),
                  hostileScalar.map((v) => [asText(v)]),
                  fc.tuple(hostileScalar, hostileScalar).map(([x, y]) => [asText(x), asText(y)]), // name=a&name=b
                ),
                { freq: 2 },
              ).map((values) => ({ name: p.name, values })),
            ),
        ),
        unknown: fc.option(fc.tuple(fc.constantFrom('__proto__', 'constructor[prototype][x]', 'limit[$gt]', 'x', 'brand_id', 'a[]'), hostileScalar), { freq: 4 }),
      });

    const headerArb = (op: Op, bad: boolean) =>
      fc.tuple(
        ...op.params
          .filter((p) => p.in === 'header')
          .map((p) =>
            (bad
              ? fc.option(fc.oneof(validArb(doc, p.schema).map(asText), hostileScalar.map(asText), fc.constant('k'.repeat(5000))), { freq: 4 })
              : validArb(doc, p.schema).map(asText)
            ).map((value) => ({ name: p.name, value })),
          ),
      );

    const bodyArb = (op: Op, badShape: boolean, badType: boolean): fc.Arbitrary<{ body?: Buffer; contentType?: string; what: string }> => {
      const contentType = badType
        ? fc.constantFrom<string | undefined>(
            'text/plain',
            'application/x-www-form-urlencoded',
            undefined,
            'application/json; charset=utf-16',
            'application/json; charset=latin1',
            'multipart/form-data; boundary=x',
            'application/xml',
            'application/json, text/html',
          )
        : fc.constantFrom<string | undefined>('application/json', 'application/json; charset=utf-8');
      if (op.method === 'GET' || op.method === 'HEAD') return fc.constant({ what: 'no body' });
      const schema = op.body ?? { type: 'object' };
      const json = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null', 'utf8');
      if (!badShape) {
        return fc
          .tuple(validArb(doc, schema), fc.array(mutationArb, { maxLength: 3 }), contentType)
          .map(([v, m, ct]) => ({ body: json(mutate(v, m)), contentType: ct, what: `schema-based body, ${m.length} mutation(s)` }));
      }
      return fc.oneof(
        { weight: 2, arbitrary: fc.tuple(hostileScalar, contentType).map(([v, ct]) => ({ body: json(v), contentType: ct, what: 'hostile scalar body' })) },
        { weight: 2, arbitrary: fc.tuple(fc.jsonValue({ maxDepth: 4 }), contentType).map(([v, ct]) => ({ body: json(v), contentType: ct, what: 'random JSON body' })) },
        {
          weight: 2,
          arbitrary: fc
            .tuple(fc.constantFrom('{', '{"a":', '[1,2', "{'a':1}", 'NaN', '{"a":1}}', '\uFEFF{}', '{"a":1,}', '', 'null', '"str"', '1', 'true', '{"__proto__":{"isAdmin":true}}', '{"a":1e999}'), contentType)
            .map(([raw, ct]) => ({ body: Buffer.from(raw, 'utf8'), contentType: ct ?? 'application/json', what: 'malformed or odd JSON' })),
        },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => ({ body: Buffer.concat([Buffer.from('{"x":"'), Buffer.from(bytes), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), contentType: 'application/json', what: 'invalid UTF-8' })) },
        { weight: 1, arbitrary: fc.constant({ what: 'no body' }) },
      );
    };

    const requestArb = (op: Op): fc.Arbitrary<RawRequest> =>
      hostileParts.chain((bad) =>
        fc
          .record({
            auth: authArb(op, bad.includes('auth')),
            path: fc.tuple(...op.params.filter((p) => p.in === 'path').map((p) => pathValueArb(op.template, p.name, p.schema, bad.includes('path')).map((v) => ({ name: p.name, ...v })))),
            query: queryArb(op, bad.includes('query')),
            headers: headerArb(op, bad.includes('headers')),
            body: bodyArb(op, bad.includes('body-shape'), bad.includes('content-type')),
          })
          .map(({ auth, path, query, headers, body }) => {
            let p = op.template;
            for (const v of path) p = p.replace(`{${v.name}}`, v.encode ? enc(v.value) : v.value);
            const qs: string[] = [];
            for (const d of query.declared) for (const value of d.values ?? []) qs.push(`${enc(d.name)}=${enc(value)}`);
            if (query.unknown) qs.push(`${enc(query.unknown[0])}=${enc(asText(query.unknown[1]))}`);
            const h: Record<string, string> = {};
            const a = authHeader(auth);
            if (a) h.authorization = a;
            for (const { name, value } of headers) if (value !== null) h[name] = headerSafe(value);
            if (body.contentType && body.body) h['content-type'] = body.contentType;
            return { method: op.method, path: p + (qs.length ? `?${qs.join('&')}` : ''), headers: h, body: body.body, what: `hostile: ${bad.join(', ') || 'body values only'}; auth ${auth}; ${body.what}` };
          }),
      );

    /** The same few nasty requests for every operation. */
    function fixedRequests(op: Op): RawRequest[] {
      const sample = (arb: fc.Arbitrary<unknown>) => fc.sample(arb, { numRuns: 1, seed: SEED })[0];
      const pathFor = () => {
        let p = op.template;
        for (const param of op.params.filter((x) => x.in === 'path')) {
          const s = seedsFor(op.template, param.name, param.schema)[0];
          p = p.replace(`{${param.name}}`, enc(s ?? asText(sample(validArb(doc, param.schema)))));
        }
        return p;
      };
      const headers = (extra: Record<string, string> = {}): Record<string, string> => {
        const h: Record<string, string> = op.auth ? { authorization: `Bearer ${brand.key}` } : {};
        for (const param of op.params.filter((x) => x.in === 'header')) h[param.name] = `fuzz-${crypto.randomUUID()}`;
        return { ...h, ...extra };
      };
      const out: RawRequest[] = [];
      if (op.auth) out.push({ method: op.method, path: pathFor(), headers: { ...headers(), authorization: '' }, what: 'empty Authorization' });
      if (op.auth) {
        const h = headers();
        delete h.authorization;
        out.push({ method: op.method, path: pathFor(), headers: h, what: 'no Authorization' });
      }
      for (const param of op.params.filter((x) => x.in === 'path')) {
        for (const bad of ["' OR 1=1 --", '../../etc/passwd', '__proto__', 'x'.repeat(5000)]) {
          out.push({ method: op.method, path: op.template.replace(`{${param.name}}`, enc(bad)).replace(/\{[^}]+\}/g, 'x'), headers: headers(), what: `path ${param.name} = ${bad.slice(0, 20)}` });
        }
      }
      if (op.method !== 'GET') {
        const valid = sample(validArb(doc, op.body ?? { type: 'object' }));
        const json = (s: string) => Buffer.from(s, 'utf8');
        const limit = op.template.endsWith('/usage') ? 16 * 1024 * 1024 : 1024 * 1024;
        out.push(
          { method: op.method, path: pathFor(), headers: headers({ 'content-type': 'application/json' }), body: json(`{"pad":"${'a'.repeat(limit + 1024)}"}`), what: `oversized body (${limit + 1034} bytes)` },
          { method: op.method, path: pathFor(), headers: headers({ 'content-type': 'application/json' }), body: json('{"id": "x",'), what: 'truncated JSON' },
          {
            method: op.method,
            path: pathFor(),
            headers: headers({ 'content-type': 'application/json' }),
            body: json(JSON.stringify(valid ?? {}).replace(/^\{/, '{"__proto__":{"isAdmin":true,"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},')),
            what: 'prototype pollution keys',
          },
          { method: op.method, path: pathFor(), headers: headers({ 'content-type': 'application/json' }), body: json(`${'['.repeat(5000)}${']'.repeat(5000)}`), what: 'nested 5000 deep' },
          { method: op.method, path: pathFor(), headers: headers({ 'content-type': 'text/plain' }), body: json(JSON.stringify(valid ?? {})), what: 'valid JSON as text/plain' },
        );
      }
      out.push({ method: op.method, path: `${pathFor()}?${INJECTION_STRINGS.slice(0, 6).map((s, i) => `q${i}=${enc(s)}`).join('&')}&limit=-1&limit=1e309`, headers: headers(), what: 'injection query' });
      return out;
    }

    // ---- checking them -----------------------------------------------------------------------
    interface EndpointStats {
      requests: number;
      byStatus: Record<string, number>;
      serverErrors: number;
      rejected: number;
      rejectedThatWrote: number;
      accepted: number;
      /** Wall time spent on this operation's requests and checks. */
      ms: number;
    }
    const stats = new Map<string, EndpointStats>();
    const failures: string[] = [];
    /** Changes seen after a rejection while something else was writing, that a replay did not repeat. */
    const unattributed: string[] = [];
    /** The fingerprint every rejected request is compared with, and the transaction counter when it was taken. */
    let baseline: Snapshot;
    let baselineXid: string;
    async function rebase(): Promise<void> {
      baselineXid = await nextXid(stack.db);
      baseline = await snapshotTables(stack.db);
    }
    await rebase();

    /**
     * Waits until nothing has written for a moment (workflows of accepted requests), then
     * rebases. Quiet: no transaction took an id, or none that changed a row (an activity retried
     * against an error rolls back, but takes ids).
     */
    async function quiet(): Promise<void> {
      let lastXid = await nextXid(stack.db);
      let last = await snapshotTables(stack.db);
      const deadline = Date.now() + 5_000;
      let still = 0;
      for (;;) {
        await new Promise((r) => setTimeout(r, 250));
        const xid = await nextXid(stack.db);
        // Quiet for 500 ms: two looks in a row without a new transaction.
        if (xid === lastXid && ++still >= 2) break;
        if (xid === lastXid) continue;
        still = 0;
        const now = await snapshotTables(stack.db);
        if (changedTables(last, now).length === 0 || Date.now() > deadline) {
          if (process.env.FUZZ_DEBUG && Date.now() > deadline) process.stdout.write(`      debug: not quiet after 5 s: ${changedTables(last, now).join(', ')}\n`);
          break;
        }
        lastXid = xid;
        last = now;
      }
      await rebase();
    }

    /** Sends one request and checks it; returns a failure message or undefined. */
    async function check(op: Op, r: RawRequest): Promise<string | undefined> {
      const key = `${op.method} ${op.template}`;
      const s = stats.get(key) ?? { requests: 0, byStatus: {}, serverErrors: 0, rejected: 0, rejectedThatWrote: 0, accepted: 0, ms: 0 };
      stats.set(key, s);
      s.requests += 1;
      let answer: Answer;
      const sentAt = Date.now();
      try {
        answer = await send(base, r);
        if (process.env.FUZZ_DEBUG && key.includes(process.env.FUZZ_DEBUG) && Date.now() - sentAt > 500) process.stdout.write(`      debug: slow answer ${Date.now() - sentAt} ms: ${answer.status} ${describeRequest(r).slice(0, 300)}\n`);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // An oversized request may be answered and closed before the client finished writing it.
        if (r.body && r.body.length > 1024 * 1024 && (e.code === 'EPIPE' || e.code === 'ECONNRESET')) {
          s.byStatus['closed while sending oversized body'] = (s.byStatus['closed while sending oversized body'] ?? 0) + 1;
          s.rejected += 1;
          await quiet();
          return undefined;
        }
        s.serverErrors += 1;
        return `${describeRequest(r)}\n   → no answer: ${e.message}`;
      }
      s.byStatus[answer.status] = (s.byStatus[answer.status] ?? 0) + 1;
      if (answer.status >= 500) {
        s.serverErrors += 1;
        await quiet();
        return `${describeRequest(r)}\n   → ${answer.status} ${answer.text.slice(0, 300)}`;
      }
      if (answer.status < 400) {
        s.accepted += 1;
        if (r.method === 'GET') {
          if ((await nextXid(stack.db)) !== baselineXid) await rebase();
        } else await quiet();
        return undefined;
      }
      s.rejected += 1;
      if (process.env.FUZZ_DEBUG && key.includes(process.env.FUZZ_DEBUG)) process.stdout.write(`      debug: ${describeRequest(r).slice(0, 600)}\n        → ${answer.status} ${answer.text.slice(0, 400)}\n`);
      // Nothing written anywhere since the baseline: certainly not by this request.
      if ((await nextXid(stack.db)) === baselineXid) return undefined;
      const after = await snapshotTables(stack.db);
      const changed = changedTables(baseline, after);
      if (changed.length === 0) {
        await rebase();
        return undefined;
      }
      if (process.env.FUZZ_DEBUG && key.includes(process.env.FUZZ_DEBUG)) process.stdout.write(`      debug: changed after a rejection: ${changed.join(', ')}\n`);
      // Something changed: this request, or a workflow of an earlier accepted one still writing?
      // When nothing else writes in the next moments, it was this request.
      // (Row counts only: a background activity marking a row, e.g. an email as sent, changes
      // content in place; such a change is judged by the replay below.)
      await new Promise((r) => setTimeout(r, 700));
      const later = await snapshotTables(stack.db);
      const rowsChanged = [...after].some(([t, a]) => baseline.get(t)?.rows !== a.rows);
      if (rowsChanged && changedTables(after, later).length === 0) {
        s.rejectedThatWrote += 1;
        await quiet();
        return `${describeRequest(r)}\n   → ${answer.status} but wrote rows: ${changed.join(', ')}`;
      }
      // Something else is writing: replay the request on a quiet database to tell.
      await quiet();
      const before = baseline;
      const again = await send(base, r).catch(() => undefined);
      const afterReplay = await snapshotTables(stack.db);
      const changedByReplay = changedTables(before, afterReplay);
      await quiet();
      if (again && again.status >= 400 && changedByReplay.length > 0) {
        s.rejectedThatWrote += 1;
        return `${describeRequest(r)}\n   → ${answer.status} (replayed: ${again.status}) but wrote rows: ${changedByReplay.join(', ')}`;
      }
      unattributed.push(`${key}: ${changed.join(', ')}`);
      return undefined;
    }

    const started = Date.now();
    let resignups = 0;
    for (const op of ops) {
      // An accepted request may have cancelled (or suspended) the seeded customer: the next
      // endpoint gets a fresh active one, so hostile bodies keep reaching the handlers' writes.
      const stage = (await stack.db('customers').where({ brand_id: brand.id, id: seedsByCollection.customers![0] }).first('stage'))?.stage;
      if (stage !== 'active' && op.template.includes('/customers/{')) {
        const fresh = spareCustomers.shift() ?? (await activeCustomer());
        if (fresh) {
          resignups += 1;
          seedsByCollection.customers!.unshift(fresh.customerId);
          seedsByCollection.customers!.length = 1;
          seedsByCollection.invoices!.unshift(fresh.invoiceId);
          seeds.push(fresh.customerId, fresh.invoiceId);
        }
        await quiet();
      }
      const opStarted = Date.now();
      for (const r of fixedRequests(op)) {
        const problem = await check(op, r);
        if (problem) failures.push(problem);
      }
      if (RUNS > 0) {
        const opFailures: string[] = [];
        const result = await fc.check(
          fc.asyncProperty(requestArb(op), async (r) => {
            const problem = await check(op, r);
            if (problem) {
              opFailures.push(problem);
              return false;
            }
            return true;
          }),
          { numRuns: RUNS, seed: SEED, endOnFailure: false, maxSkipsPerRun: 10 },
        );
        if (result.failed) {
          // The shrunk counterexample is the last failure recorded; the first shows the original.
          failures.push(`${op.method} ${op.template}: ${opFailures.length} failing request(s) while shrinking; original and shrunk:\n  ${opFailures[0]}\n  ${opFailures[opFailures.length - 1]}`);
        }
      }
      const st = stats.get(`${op.method} ${op.template}`);
      if (st) st.ms += Date.now() - opStarted;
    }
    const seconds = (Date.now() - started) / 1000;

    const polluted = Object.getOwnPropertyNames(Object.prototype).sort().join(',') !== protoKeysBefore || ({} as Record<string, unknown>).isAdmin !== undefined || ({} as Record<string, unknown>).polluted !== undefined;
    if (polluted) failures.push('Object.prototype was polluted by a request body');

    const totals = [...stats.values()].reduce(
      (t, s) => ({ requests: t.requests + s.requests, serverErrors: t.serverErrors + s.serverErrors, rejected: t.rejected + s.rejected, rejectedThatWrote: t.rejectedThatWrote + s.rejectedThatWrote, accepted: t.accepted + s.accepted }),
      { requests: 0, serverErrors: 0, rejected: 0, rejectedThatWrote: 0, accepted: 0 },
    );
    const file = writeReliabilityResult('fuzz', {
      seed: SEED,
      runsPerEndpoint: RUNS,
      seconds,
      operations: ops.length,
      documentedOperations: ops.filter((o) => !o.extra).length,
      totals,
      prototypePolluted: polluted,
      failures: failures.length,
      seedCustomersReplaced: resignups,
      unattributedChanges: unattributed,
      endpoints: Object.fromEntries([...stats.entries()].sort(([a], [b]) => a.localeCompare(b))),
    });
    recordPlantedBug('fuzz', failures.length > 0, failures);
    process.stdout.write(
      `      ${totals.requests} requests in ${seconds.toFixed(1)} s: ${totals.accepted} accepted, ${totals.rejected} rejected, ${totals.serverErrors} 5xx/no answer, ${totals.rejectedThatWrote} rejected but wrote rows (${file})\n`,
    );
    assert.deepEqual(failures, [], `${failures.length} problem(s) (FUZZ_SEED=${SEED}):\n${failures.join('\n')}`);
    assert.equal(totals.serverErrors, 0);
    assert.equal(totals.rejectedThatWrote, 0);
  });
});
