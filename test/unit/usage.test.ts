import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UsageEvent } from '../../api/usage';
import {
  addDecimals,
  MAX_EVENT_AGE_MS,
  MAX_FUTURE_SKEW_MS,
  normalizeDecimal,
  parseQuantity,
  thresholdCrossings,
  timestampProblem,
} from '../../data/usage';

describe('usage: quantities', () => {
  it('keeps decimal strings exact and takes a JSON number by its shortest text', () => {
    assert.deepEqual(parseQuantity('0.000001'), { ok: true, value: '0.000001' });
    assert.deepEqual(parseQuantity('12.500000'), { ok: true, value: '12.500000' });
    assert.deepEqual(parseQuantity('0007'), { ok: true, value: '7' });
    assert.deepEqual(parseQuantity(0.1), { ok: true, value: '0.1' });
    assert.deepEqual(parseQuantity(42), { ok: true, value: '42' });
    assert.deepEqual(parseQuantity(0), { ok: true, value: '0' });
    assert.deepEqual(parseQuantity('999999999999999.999999'), { ok: true, value: '999999999999999.999999' });
  });

  it('refuses what cannot be stored exactly or is out of range', () => {
    const refused = (v: unknown) => {
      const r = parseQuantity(v);
      assert.equal(r.ok, false, `${String(v)} should be refused`);
      return (r as { message: string }).message;
    };
    assert.match(refused(-1), /negative/);
    assert.match(refused('-0.5'), /negative/);
    assert.match(refused(0.1 + 0.2), /6 decimal/);
    assert.match(refused('0.0000001'), /6 decimal/);
    assert.match(refused(1e21), /exponent/);
    assert.match(refused(1e-7), /exponent/);
    assert.match(refused('1000000000000000'), /less than 1e15/);
    assert.match(refused(Number.NaN), /finite/);
    assert.match(refused('1e3'), /decimal/);
    assert.match(refused(' 1'), /decimal/);
    assert.match(refused('.5'), /decimal/);
    assert.match(refused(true), /number or a decimal string/);
  });

  it('never changes the value of a number it accepts', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999_999_999 }), fc.integer({ min: 0, max: 6 }), (units, decimals) => {
        const n = units / 10 ** decimals;
        const r = parseQuantity(n);
        if (r.ok) assert.equal(Number(r.value), n);
      }),
    );
  });

  it('normalizes and adds decimals exactly', () => {
    assert.equal(normalizeDecimal('85.000000000000'), '85');
    assert.equal(normalizeDecimal('0.000100000000'), '0.0001');
    assert.equal(normalizeDecimal('000.5'), '0.5');
    assert.equal(addDecimals('0.1', '0.2'), '0.3');
    assert.equal(addDecimals('999999999999999.999999', '0.000001'), '1000000000000000');
  });
});

describe('usage: accepted time window', () => {
  const now = Date.parse('2026-11-25T12:00:00Z');
  it('accepts up to five minutes ahead and 35 days back, inclusive', () => {
    assert.equal(timestampProblem(now, now), undefined);
    assert.equal(timestampProblem(now + MAX_FUTURE_SKEW_MS, now), undefined);
    assert.equal(timestampProblem(now - MAX_EVENT_AGE_MS, now), undefined);
    assert.match(timestampProblem(now + MAX_FUTURE_SKEW_MS + 1, now)!, /future/);
    assert.match(timestampProblem(now - MAX_EVENT_AGE_MS - 1, now)!, /older than 35 days/);
  });
});

describe('usage: threshold crossings', () => {
  const crossed = (included: number, before: string, after: string) =>
    thresholdCrossings({ metric: 'storage_gb', included, before, after }).map((c) => c.threshold);

  it('reports a threshold when the batch reaches it, not before and not again', () => {
    assert.deepEqual(crossed(100, '0', '79.999999'), []);
    assert.deepEqual(crossed(100, '0', '80'), [80]);
    assert.deepEqual(crossed(100, '0', '85'), [80]);
    assert.deepEqual(crossed(100, '85', '105'), [100]);
    assert.deepEqual(crossed(100, '80', '99'), []);
    assert.deepEqual(crossed(100, '105', '200'), []);
    assert.deepEqual(crossed(100, '10', '100'), [80, 100], 'a batch jumping over both reports both');
  });

  it('compares exactly at allowances that are not multiples of 5', () => {
    // 80 % of 7 is 5.6.
    assert.deepEqual(crossed(7, '0', '5.599999'), []);
    assert.deepEqual(crossed(7, '5.599999', '5.600000000000'), [80]);
  });

  it('has no thresholds without an allowance', () => {
    assert.deepEqual(crossed(0, '0', '1000'), []);
  });

  it('carries the total and the allowance as normalized decimal strings', () => {
    assert.deepEqual(thresholdCrossings({ metric: 'm', included: 100, before: '0.000000000000', after: '85.500000000000' }), [
      { metric: 'm', threshold: 80, quantity: '85.5', included: '100' },
    ]);
  });

  it('crosses each threshold exactly once however a total is split into batches', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10 }), fc.array(fc.integer({ min: 0, max: 3_000_000 }), { maxLength: 40 }), (included, batches) => {
        let total = '0';
        const seen: number[] = [];
        for (const micro of batches) {
          const after = addDecimals(total, (micro / 1e6).toFixed(6));
          seen.push(...crossed(included, total, after));
          total = after;
        }
        const finalMicro = batches.reduce((sum, m) => sum + m, 0);
        const expected = [80, 100].filter((t) => finalMicro * 100 >= included * t * 1e6);
        assert.deepEqual(seen, expected);
      }),
    );
  });
});

describe('usage: event schema', () => {
  const ok = { id: 'req_1:a.b-c', metric: 'api_calls', quantity: '1', timestamp: '2026-11-25T10:00:00+01:00' };
  const paths = (value: unknown) => {
    const r = UsageEvent.safeParse(value);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => i.path.join('.')).sort();
  };

  it('accepts a well-formed event and gives the quantity as an exact string', () => {
    const r = UsageEvent.parse({ ...ok, quantity: 0.25, properties: { region: 'eu', n: 3, cached: true } });
    assert.equal(r.quantity, '0.25');
  });

  it('names each bad field', () => {
    assert.deepEqual(paths({ ...ok, id: 'x'.repeat(129) }), ['id']);
    assert.deepEqual(paths({ ...ok, id: 'has space' }), ['id']);
    assert.deepEqual(paths({ ...ok, metric: 'API_Calls' }), ['metric']);
    assert.deepEqual(paths({ ...ok, timestamp: '2026-11-25T10:00:00' }), ['timestamp']);
    assert.deepEqual(paths({ ...ok, timestamp: 1795600800000 }), ['timestamp']);
    assert.deepEqual(paths({ ...ok, extra: 1 }), ['']);
    assert.deepEqual(paths({ id: 'a' }), ['metric', 'quantity', 'timestamp']);
  });

  it('keeps properties flat and small', () => {
    assert.deepEqual(paths({ ...ok, properties: { nested: { a: 1 } } }), ['properties.nested']);
    assert.deepEqual(paths({ ...ok, properties: { list: [1] } }), ['properties.list']);
    assert.deepEqual(paths({ ...ok, properties: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i])) }), ['properties']);
    assert.deepEqual(paths({ ...ok, properties: JSON.parse('{"__proto__": 1}') }), ['properties.__proto__']);
  });
});
