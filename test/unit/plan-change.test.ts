import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { UsageComponent } from '../../domain/catalog';
import {
  CandidatePlan,
  cancellationProration,
  changeDirection,
  FeeTerms,
  periodFeeMinor,
  planChangeProration,
  remainingShare,
  suggestUpgrade,
  unusedMinor,
} from '../../domain/plan-change';
import type { BillingPeriod } from '../../domain/period';

const NOVEMBER: BillingPeriod = { number: 1, start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' };
const terms = (planCode: string, listPriceMinor: number, discountPercent = 0, discountPeriods: number | null = null): FeeTerms => ({
  planCode,
  planName: planCode[0]!.toUpperCase() + planCode.slice(1),
  listPriceMinor,
  discountPercent,
  discountPeriods,
});
const sum = (lines: Array<{ amountMinor: number }>) => lines.reduce((s, l) => s + l.amountMinor, 0);

describe('plan changes and proration (domain/plan-change)', () => {
  it('matches the hand-computed example: 29.00 → 99.00 with 11 of 30 days left', () => {
    // 30 days = 2,592,000 s; 11 days = 950,400 s left.
    // Credit 29.00 × 11/30 = 10.6333… → 10.63; charge 99.00 × 11/30 = 36.30 exactly; net 25.67.
    const lines = planChangeProration({ from: terms('basic', 2900), to: terms('pro', 9900), period: NOVEMBER, at: '2026-11-20T00:00:00.000Z' });
    assert.deepEqual(
      lines.map((l) => l.amountMinor),
      [-1063, 3630],
    );
    assert.equal(sum(lines), 2567);
    assert.equal(lines[0]!.detail.remainingSeconds, 950_400);
    assert.equal(lines[0]!.detail.totalSeconds, 2_592_000);
    assert.equal(lines[0]!.periodStart, '2026-11-20T00:00:00.000Z');
    assert.equal(lines[0]!.periodEnd, NOVEMBER.end);
    assert.match(lines[0]!.description, /Unused time on Basic: 11 d 0 h/);
  });

  it('credits what was charged: a discounted period credits the discounted fee', () => {
    // 20 % off 29.00 = 23.20 charged; 23.20 × 11/30 = 8.5066… → 8.51.
    const lines = planChangeProration({ from: terms('basic', 2900, 20, 3), to: terms('pro', 9900), period: NOVEMBER, at: '2026-11-20T00:00:00.000Z' });
    assert.equal(lines[0]!.amountMinor, -851);
    // After the discount's last period, the list price was charged.
    assert.equal(periodFeeMinor(terms('basic', 2900, 20, 3), 4), 2900);
  });

  it('counts whole seconds and rounds half away from zero', () => {
    assert.deepEqual(remainingShare(NOVEMBER, '2026-11-30T23:59:59.999Z'), { remainingSeconds: 0, totalSeconds: 2_592_000 });
    // 1 minor unit over half a period is 0.5 → 1.
    assert.equal(unusedMinor(1, { remainingSeconds: 50, totalSeconds: 100 }), 1);
    assert.equal(unusedMinor(3, { remainingSeconds: 50, totalSeconds: 100 }), 2);
    assert.throws(() => remainingShare(NOVEMBER, '2026-12-02T00:00:00.000Z'), /outside period 1/);
  });

  it('never creates or loses value: a change to an equally priced plan nets zero; used + credited = charged', () => {
    const start = Date.parse(NOVEMBER.start);
    const end = Date.parse(NOVEMBER.end);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: start, max: end }), fc.integer({ min: 0, max: 100 }), (fee, t, pct) => {
        const at = new Date(t).toISOString();
        const from = terms('a', fee, pct, null);
        const same = planChangeProration({ from, to: { ...from, planCode: 'b', discountPercent: pct }, period: NOVEMBER, at });
        assert.equal(sum(same), 0);
        const charged = periodFeeMinor(from, 1);
        const credit = -cancellationProration({ from, period: NOVEMBER, at }).reduce((s, l) => s + l.amountMinor, 0);
        assert.ok(credit >= 0 && credit <= charged, `credit ${credit} within 0..${charged}`);
        const used = charged - credit;
        assert.equal(used + credit, charged);
      }),
    );
  });

  it('credits less the later the change comes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 0, max: 2_592_000 }), fc.integer({ min: 0, max: 2_592_000 }), (fee, a, b) => {
        const [early, late] = a <= b ? [a, b] : [b, a];
        const at = (s: number) => new Date(Date.parse(NOVEMBER.start) + s * 1000).toISOString();
        const credit = (s: number) => unusedMinor(fee, remainingShare(NOVEMBER, at(s)));
        assert.ok(credit(early) >= credit(late));
      }),
    );
    assert.equal(unusedMinor(2900, remainingShare(NOVEMBER, NOVEMBER.start)), 2900);
    assert.equal(unusedMinor(2900, remainingShare(NOVEMBER, NOVEMBER.end)), 0);
  });

  it('calls a cheaper plan a downgrade and anything else an upgrade', () => {
    assert.equal(changeDirection(4900, 900), 'downgrade');
    assert.equal(changeDirection(900, 4900), 'upgrade');
    assert.equal(changeDirection(900, 900), 'upgrade');
  });

  describe('upgrade suggestions', () => {
    const calls = (unitPrice: string, includedQuantity: number): UsageComponent => ({ metric: 'api_calls', model: 'per_unit', unitPrice, includedQuantity });
    const plan = (code: string, fee: number, component: UsageComponent, extra: Partial<CandidatePlan> = {}): CandidatePlan => ({
      code,
      name: code,
      currency: 'USD',
      billingPeriod: 'P1M',
      recurringFeeMinor: fee,
      usageComponents: [component],
      ...extra,
    });
    const basic = plan('basic', 1000, calls('0.01', 1000));
    const pro = plan('pro', 5000, calls('0.001', 100_000));

    it('suggests the bigger plan when it would have cost the customer less', () => {
      // basic: 10.00 + 9,000 × 0.01 = 100.00; pro: 50.00 (within its allowance).
      const s = suggestUpgrade({ current: basic, usage: { api_calls: '10000' }, catalog: [basic, pro] });
      assert.deepEqual(s, { planCode: 'pro', planName: 'pro', reason: 'cheaper_for_customer', currentCostMinor: 10000, suggestedCostMinor: 5000 });
    });

    it('suggests a roomier plan when the allowance ran out even if it is not cheaper yet', () => {
      // basic: 10.00 + 500 × 0.01 = 15.00 < 50.00, but 1,500 calls exceed the 1,000 included.
      const s = suggestUpgrade({ current: basic, usage: { api_calls: '1500' }, catalog: [basic, pro] });
      assert.equal(s?.reason, 'allowance_exceeded');
      assert.equal(s?.planCode, 'pro');
    });

    it('suggests nothing within the allowance, or across currencies and billing periods', () => {
      assert.equal(suggestUpgrade({ current: basic, usage: { api_calls: '900' }, catalog: [basic, pro] }), null);
      const elsewhere = [plan('eur', 5000, calls('0.001', 100_000), { currency: 'EUR' }), plan('yearly', 5000, calls('0.001', 100_000), { billingPeriod: 'P1Y' })];
      assert.equal(suggestUpgrade({ current: basic, usage: { api_calls: '10000' }, catalog: [basic, ...elsewhere] }), null);
    });
  });
});
