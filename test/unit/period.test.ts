/**
 * domain/period.ts: ISO-8601 durations and billing periods computed from the anchor, so that
 * month-end anchors never drift and consecutive periods tile time.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { addDuration, billingPeriod, IsoDuration, parseIsoDuration } from '../../domain/period';

const ZERO: IsoDuration = { years: 0, months: 0, weeks: 0, days: 0, hours: 0, minutes: 0, seconds: 0 };

/** The ISO text for a duration, omitting zero fields (the inverse of parseIsoDuration). */
function isoText(d: IsoDuration): string {
  const date = `${d.years ? `${d.years}Y` : ''}${d.months ? `${d.months}M` : ''}${d.weeks ? `${d.weeks}W` : ''}${d.days ? `${d.days}D` : ''}`;
  const time = `${d.hours ? `${d.hours}H` : ''}${d.minutes ? `${d.minutes}M` : ''}${d.seconds ? `${d.seconds}S` : ''}`;
  return `P${date}${time ? `T${time}` : ''}`;
}

const durationArb: fc.Arbitrary<IsoDuration> = fc
  .record({
    years: fc.integer({ min: 0, max: 3 }),
    months: fc.integer({ min: 0, max: 18 }),
    weeks: fc.integer({ min: 0, max: 4 }),
    days: fc.integer({ min: 0, max: 45 }),
    hours: fc.integer({ min: 0, max: 48 }),
    minutes: fc.integer({ min: 0, max: 90 }),
    seconds: fc.integer({ min: 0, max: 90 }),
  })
  .filter((d) => Object.values(d).some((v) => v > 0));

/** Typical billing lengths, weighted in alongside arbitrary ones. */
const commonDurationArb = fc.constantFrom('P1M', 'P3M', 'P1Y', 'P1W', 'P14D', 'PT1M', 'P1M15D');
const durationTextArb = fc.oneof(commonDurationArb, durationArb.map(isoText));

/** Anchors between 1970 and 2200, with arbitrary time of day and milliseconds. */
const anchorArb = fc
  .integer({ min: 0, max: Date.UTC(2200, 0, 1) })
  .map((ms) => new Date(ms).toISOString());
/** Month-end-heavy anchors: day 28–31 of a random month. */
const monthEndAnchorArb = fc
  .record({ year: fc.integer({ min: 1970, max: 2200 }), month: fc.integer({ min: 0, max: 11 }), day: fc.integer({ min: 28, max: 31 }) })
  .map(({ year, month, day }) => new Date(Date.UTC(year, month, Math.min(day, daysInMonth(year, month)))).toISOString());

function daysInMonth(year: number, month0: number): number {
  return new Date(Date.UTC(year, month0 + 1, 0)).getUTCDate();
}

describe('domain/period', () => {
  describe('parseIsoDuration', () => {
    const valid: Array<[string, Partial<IsoDuration>]> = [
      ['P1M', { months: 1 }],
      ['P1Y', { years: 1 }],
      ['P14D', { days: 14 }],
      ['PT1M', { minutes: 1 }],
      ['P1W', { weeks: 1 }],
      ['PT5M', { minutes: 5 }],
      ['PT36H', { hours: 36 }],
      ['PT30S', { seconds: 30 }],
      ['P1Y2M3DT4H5M6S', { years: 1, months: 2, days: 3, hours: 4, minutes: 5, seconds: 6 }],
      ['P0Y1M', { months: 1 }],
    ];
    for (const [text, fields] of valid) {
      it(`parses "${text}"`, () => {
        assert.deepStrictEqual(parseIsoDuration(text), { ...ZERO, ...fields });
      });
    }

    it('tells months (before T) apart from minutes (after T)', () => {
      assert.equal(parseIsoDuration('P1M').months, 1);
      assert.equal(parseIsoDuration('P1M').minutes, 0);
      assert.equal(parseIsoDuration('PT1M').minutes, 1);
      assert.equal(parseIsoDuration('PT1M').months, 0);
    });

    const invalid = ['', 'P', 'PT', '1M', 'P-1D', 'P1', 'P1.5M', 'P1DT', 'PT1D', 'P1H', 'p1m', 'P1M ', ' P1M', 'P1D1M', 'P1MT1Y', 'M1P', 'P1Y1Y'];
    for (const text of invalid) {
      it(`rejects ${JSON.stringify(text)} with a RangeError that quotes it`, () => {
        assert.throws(
          () => parseIsoDuration(text),
          (err: unknown) => err instanceof RangeError && err.message.includes(`"${text}"`) && /ISO-8601 duration/.test(err.message),
        );
      });
    }

    for (const text of ['P0D', 'PT0S', 'P0Y0M0W0DT0H0M0S']) {
      it(`rejects the zero-length duration "${text}"`, () => {
        assert.throws(() => parseIsoDuration(text), (err: unknown) => err instanceof RangeError && /zero-length/.test(err.message));
      });
    }

    it('parses back every non-zero duration it can be written as', () => {
      fc.assert(
        fc.property(durationArb, (d) => {
          // fc.record builds null-prototype objects; compare as a plain object.
          assert.deepStrictEqual(parseIsoDuration(isoText(d)), { ...d });
        }),
      );
    });
  });

  describe('addDuration', () => {
    it('returns the anchor itself for zero repetitions', () => {
      const anchor = new Date('2026-01-31T12:34:56.789Z');
      assert.equal(addDuration(anchor, parseIsoDuration('P1M'), 0).toISOString(), anchor.toISOString());
    });

    it('defaults to one repetition', () => {
      const anchor = new Date('2026-01-15T00:00:00Z');
      assert.equal(addDuration(anchor, parseIsoDuration('P1M')).toISOString(), '2026-02-15T00:00:00.000Z');
    });

    it('does not mutate the anchor', () => {
      const anchor = new Date('2026-01-31T00:00:00Z');
      addDuration(anchor, parseIsoDuration('P1Y1M1DT1H'), 3);
      assert.equal(anchor.toISOString(), '2026-01-31T00:00:00.000Z');
    });

    it('crosses year boundaries on month arithmetic', () => {
      assert.equal(addDuration(new Date('2026-11-30T00:00:00Z'), parseIsoDuration('P1M'), 3).toISOString(), '2027-02-28T00:00:00.000Z');
      assert.equal(addDuration(new Date('2026-12-31T00:00:00Z'), parseIsoDuration('P13M')).toISOString(), '2028-01-31T00:00:00.000Z');
    });
  });

  describe('billingPeriod', () => {
    it('starts period 1 at the anchor and ends it one duration later', () => {
      assert.deepStrictEqual(billingPeriod('2026-01-15T09:30:00Z', 'P1M', 1), {
        number: 1,
        start: '2026-01-15T09:30:00.000Z',
        end: '2026-02-15T09:30:00.000Z',
      });
    });

    describe('a month-end anchor (2026-01-31, P1M) does not drift', () => {
      const anchor = '2026-01-31T00:00:00Z';
      const expectedStarts: Array<[number, string]> = [
        [1, '2026-01-31'],
        [2, '2026-02-28'],
        [3, '2026-03-31'],
        [4, '2026-04-30'],
        [5, '2026-05-31'],
        [6, '2026-06-30'],
        [13, '2027-01-31'],
        [26, '2028-02-29'],
        [27, '2028-03-31'],
      ];
      for (const [n, day] of expectedStarts) {
        it(`period ${n} starts ${day}`, () => {
          assert.equal(billingPeriod(anchor, 'P1M', n).start, `${day}T00:00:00.000Z`);
        });
      }

      it('period 2 ends on 2026-03-31, not 2026-03-28', () => {
        assert.equal(billingPeriod(anchor, 'P1M', 2).end, '2026-03-31T00:00:00.000Z');
      });
    });

    it('keeps the anchor\'s time of day across clamped month ends', () => {
      assert.deepStrictEqual(billingPeriod('2026-01-31T23:59:59.999Z', 'P1M', 2), {
        number: 2,
        start: '2026-02-28T23:59:59.999Z',
        end: '2026-03-31T23:59:59.999Z',
      });
    });

    it('quarters from a month-end anchor land on each quarter\'s last day', () => {
      assert.equal(billingPeriod('2026-08-31T00:00:00Z', 'P3M', 2).start, '2026-11-30T00:00:00.000Z');
      assert.equal(billingPeriod('2026-08-31T00:00:00Z', 'P3M', 3).start, '2027-02-28T00:00:00.000Z');
      assert.equal(billingPeriod('2026-08-31T00:00:00Z', 'P3M', 4).start, '2027-05-31T00:00:00.000Z');
    });

    describe('a leap-day anchor (2028-02-29, P1Y)', () => {
      const anchor = '2028-02-29T00:00:00Z';
      it('ends period 1 on 2029-02-28', () => {
        assert.equal(billingPeriod(anchor, 'P1Y', 1).end, '2029-02-28T00:00:00.000Z');
      });
      it('ends periods 2 and 3 on Feb 28 of the common years 2030 and 2031', () => {
        assert.equal(billingPeriod(anchor, 'P1Y', 2).end, '2030-02-28T00:00:00.000Z');
        assert.equal(billingPeriod(anchor, 'P1Y', 3).end, '2031-02-28T00:00:00.000Z');
      });
      it('returns to Feb 29 in the next leap year: period 5 starts 2032-02-29', () => {
        assert.equal(billingPeriod(anchor, 'P1Y', 4).end, '2032-02-29T00:00:00.000Z');
        assert.equal(billingPeriod(anchor, 'P1Y', 5).start, '2032-02-29T00:00:00.000Z');
      });
      it('skips the non-leap century year 2100', () => {
        assert.equal(billingPeriod(anchor, 'P1Y', 72).end, '2100-02-28T00:00:00.000Z');
        assert.equal(billingPeriod(anchor, 'P1Y', 76).end, '2104-02-29T00:00:00.000Z');
      });
    });

    it('counts fixed-length durations in exact elapsed time, ignoring month lengths', () => {
      assert.deepStrictEqual(billingPeriod('2026-02-20T00:00:00Z', 'P14D', 1), {
        number: 1,
        start: '2026-02-20T00:00:00.000Z',
        end: '2026-03-06T00:00:00.000Z',
      });
      assert.equal(billingPeriod('2026-01-01T00:00:00Z', 'P1W', 3).start, '2026-01-15T00:00:00.000Z');
      assert.equal(billingPeriod('2026-01-01T00:00:00Z', 'PT1M', 3).start, '2026-01-01T00:02:00.000Z');
      assert.equal(billingPeriod('2026-01-01T00:00:00Z', 'PT1M', 3).end, '2026-01-01T00:03:00.000Z');
    });

    it('applies a mixed duration (P1M15D) as n months then n × 15 days from the anchor', () => {
      assert.equal(billingPeriod('2026-01-31T00:00:00Z', 'P1M15D', 1).end, '2026-03-15T00:00:00.000Z');
      assert.equal(billingPeriod('2026-01-31T00:00:00Z', 'P1M15D', 2).end, '2026-04-30T00:00:00.000Z');
    });

    it('accepts a date-only anchor as UTC midnight', () => {
      assert.equal(billingPeriod('2026-01-31', 'P1M', 2).start, '2026-02-28T00:00:00.000Z');
    });

    it('returns the period number it was asked for', () => {
      assert.equal(billingPeriod('2026-01-01T00:00:00Z', 'P1M', 7).number, 7);
    });

    for (const n of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      it(`rejects the period number ${n}`, () => {
        assert.throws(
          () => billingPeriod('2026-01-01T00:00:00Z', 'P1M', n),
          (err: unknown) => err instanceof RangeError && /period number must be a positive integer/.test(err.message),
        );
      });
    }

    it('rejects an anchor that is not a timestamp', () => {
      assert.throws(() => billingPeriod('not a date', 'P1M', 1), (err: unknown) => err instanceof RangeError && /is not a timestamp/.test(err.message));
    });

    it('rejects an invalid or zero duration', () => {
      assert.throws(() => billingPeriod('2026-01-01T00:00:00Z', 'P', 1), RangeError);
      assert.throws(() => billingPeriod('2026-01-01T00:00:00Z', 'P0D', 1), RangeError);
    });

    describe('properties', () => {
      const nArb = fc.integer({ min: 1, max: 240 });

      it('period 1 starts exactly at the anchor', () => {
        fc.assert(
          fc.property(anchorArb, durationTextArb, (anchor, duration) => {
            assert.equal(billingPeriod(anchor, duration, 1).start, anchor);
          }),
        );
      });

      it('consecutive periods tile: period n ends exactly where period n + 1 starts', () => {
        fc.assert(
          fc.property(fc.oneof(anchorArb, monthEndAnchorArb), durationTextArb, nArb, (anchor, duration, n) => {
            assert.equal(billingPeriod(anchor, duration, n).end, billingPeriod(anchor, duration, n + 1).start);
          }),
          { numRuns: 500 },
        );
      });

      it('every period is non-empty: start < end', () => {
        fc.assert(
          fc.property(fc.oneof(anchorArb, monthEndAnchorArb), durationTextArb, nArb, (anchor, duration, n) => {
            const p = billingPeriod(anchor, duration, n);
            assert.ok(Date.parse(p.start) < Date.parse(p.end), `${anchor} ${duration} #${n}: ${p.start} .. ${p.end}`);
          }),
          { numRuns: 500 },
        );
      });

      it('month-based periods start on the anchor day, clamped to the month length, never drifting', () => {
        fc.assert(
          fc.property(monthEndAnchorArb, fc.integer({ min: 1, max: 12 }), nArb, (anchor, months, n) => {
            const anchorDate = new Date(anchor);
            const start = new Date(billingPeriod(anchor, `P${months}M`, n).start);
            const expectedMonth = anchorDate.getUTCMonth() + months * (n - 1);
            const year = anchorDate.getUTCFullYear() + Math.floor(expectedMonth / 12);
            const month = expectedMonth % 12;
            assert.equal(start.getUTCFullYear(), year);
            assert.equal(start.getUTCMonth(), month);
            assert.equal(start.getUTCDate(), Math.min(anchorDate.getUTCDate(), daysInMonth(year, month)));
            assert.equal(start.getUTCHours() * 3600 + start.getUTCMinutes() * 60 + start.getUTCSeconds(), 0);
          }),
          { numRuns: 500 },
        );
      });

      it('fixed-length periods are all exactly the same length', () => {
        const fixedArb = durationArb.map((d) => ({ ...d, years: 0, months: 0 })).filter((d) => Object.values(d).some((v) => v > 0));
        fc.assert(
          fc.property(anchorArb, fixedArb, nArb, (anchor, d, n) => {
            const p = billingPeriod(anchor, isoText(d), n);
            const expectedMs = ((d.weeks * 7 + d.days) * 86_400 + d.hours * 3600 + d.minutes * 60 + d.seconds) * 1000;
            assert.equal(Date.parse(p.end) - Date.parse(p.start), expectedMs);
          }),
        );
      });
    });
  });
});
