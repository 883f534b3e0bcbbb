import assert from 'node:assert/strict';
import fc from 'fast-check';
import { conversionRate, funnelTotals, sumRevenue } from '../../domain/acquisition';

describe('acquisition funnel arithmetic', () => {
  it('reads an empty funnel as a rate of "0.0000", not an error', () => {
    assert.equal(conversionRate(0, 0), '0.0000');
    assert.deepEqual(funnelTotals([]), { leads: 0, conversions: 0, expired: 0, open: 0, conversionRate: '0.0000', revenue: [] });
  });

  it('writes rates with four decimals, rounded half away from zero once', () => {
    assert.equal(conversionRate(0, 7), '0.0000');
    assert.equal(conversionRate(1, 3), '0.3333');
    assert.equal(conversionRate(2, 3), '0.6667');
    assert.equal(conversionRate(1, 8), '0.1250');
    assert.equal(conversionRate(1, 20_000), '0.0001', '0.00005 rounds up');
    assert.equal(conversionRate(1, 20_001), '0.0000');
    assert.equal(conversionRate(5, 5), '1.0000');
    assert.equal(conversionRate(123_456_789n, 987_654_321n), '0.1250');
  });

  it('refuses impossible counts', () => {
    assert.throws(() => conversionRate(4, 3), RangeError);
    assert.throws(() => conversionRate(-1, 3), RangeError);
  });

  it('is within half a unit of the last place of the exact ratio, and between 0 and 1', () => {
    fc.assert(
      fc.property(fc.nat({ max: 1_000_000 }), fc.nat({ max: 1_000_000 }), (a, b) => {
        const [conversions, leads] = a <= b ? [a, b] : [b, a];
        const rate = conversionRate(conversions, leads);
        assert.match(rate, /^[01]\.\d{4}$/);
        if (leads === 0) return;
        // |rate·10⁴·leads − conversions·10⁴| ≤ leads/2, in integers.
        const scaled = BigInt(rate.replace('.', ''));
        const diff = scaled * BigInt(leads) - BigInt(conversions) * 10_000n;
        assert.ok(2n * (diff < 0n ? -diff : diff) <= BigInt(leads), `${conversions}/${leads} → ${rate}`);
      }),
    );
  });

  it('sums revenue per currency and never mixes currencies', () => {
    assert.deepEqual(
      sumRevenue([
        [{ currency: 'USD', minor: 4900n }],
        [
          { currency: 'EUR', minor: 1000n },
          { currency: 'USD', minor: -900n },
        ],
        [],
      ]),
      [
        { currency: 'EUR', minor: 1000n },
        { currency: 'USD', minor: 4000n },
      ],
    );
  });

  it('totals the funnel from its rows, with the rate of the totals (not an average of rates)', () => {
    const totals = funnelTotals([
      { leads: 1, conversions: 1, expired: 0, open: 0, revenue: [{ currency: 'USD', minor: 100n }] },
      { leads: 3, conversions: 0, expired: 1, open: 2, revenue: [] },
    ]);
    assert.deepEqual(totals, { leads: 4, conversions: 1, expired: 1, open: 2, conversionRate: '0.2500', revenue: [{ currency: 'USD', minor: 100n }] });
  });
});
