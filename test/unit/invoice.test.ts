import assert from 'node:assert/strict';
import fc from 'fast-check';
import { divRoundHalfAway, DraftLine, invoiceLedgerEntries, invoiceNumber, invoiceTotals, parseRate, taxOn } from '../../domain/invoice';

const line = (kind: DraftLine['kind'], amountMinor: number): DraftLine => ({
  kind,
  description: kind,
  metric: null,
  quantity: null,
  unitPrice: null,
  amountMinor,
  periodStart: null,
  periodEnd: null,
  detail: {},
});

const arbLines = fc.array(
  fc.oneof(
    fc.integer({ min: 0, max: 10_000_000 }).map((a) => line('recurring', a)),
    fc.integer({ min: 0, max: 10_000_000 }).map((a) => line('usage', a)),
    fc.integer({ min: 0, max: 1_000_000 }).map((a) => line('usage_adjustment', a)),
    fc.integer({ min: 0, max: 1_000_000 }).map((a) => line('discount', -a)),
  ),
  { maxLength: 20 },
);
const arbRate = fc
  .tuple(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 9999 }))
  .map(([whole, frac]) => (frac ? `${whole}.${String(frac).padStart(4, '0').replace(/0+$/, '')}` : String(whole)));

describe('domain/invoice', () => {
  describe('divRoundHalfAway', () => {
    it('rounds halves away from zero and everything else to the nearest integer', () => {
      assert.equal(divRoundHalfAway(5n, 10n), 1n);
      assert.equal(divRoundHalfAway(-5n, 10n), -1n);
      assert.equal(divRoundHalfAway(4n, 10n), 0n);
      assert.equal(divRoundHalfAway(15n, 10n), 2n);
      assert.equal(divRoundHalfAway(-15n, 10n), -2n);
      assert.equal(divRoundHalfAway(14n, 10n), 1n);
    });
    it('is within half a unit of the exact quotient', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }), fc.bigInt({ min: 1n, max: 10n ** 9n }), (n, d) => {
          const q = divRoundHalfAway(n, d);
          const error = q * d - n; // scaled by d
          return 2n * (error < 0n ? -error : error) <= d;
        }),
      );
    });
  });

  describe('tax', () => {
    it('adds 19 % on top of the net when exclusive, rounding once', () => {
      assert.equal(taxOn(10_000n, { rate: '19', inclusive: false }), 1900n);
      assert.equal(taxOn(1n, { rate: '50', inclusive: false }), 1n); // 0.5 → 1
      assert.equal(taxOn(333n, { rate: '7.25', inclusive: false }), 24n); // 24.1425
    });
    it('takes the tax out of the price when inclusive', () => {
      assert.equal(taxOn(11_900n, { rate: '19', inclusive: true }), 1900n);
      assert.equal(taxOn(100n, { rate: '19', inclusive: true }), 16n); // 100 − round(84.03)
    });
    it('rejects malformed and impossible rates', () => {
      for (const bad of ['-1', '19%', '1e2', '12.34567', '101', '']) assert.throws(() => parseRate(bad), RangeError, bad);
    });
  });

  describe('invoiceTotals', () => {
    it('charges a fee with a discount, tax on top and credit applied', () => {
      const totals = invoiceTotals([line('recurring', 4900), line('usage', 49343), line('discount', -980)], { rate: '19', inclusive: false }, 1000);
      assert.deepEqual(totals, {
        subtotalMinor: 54243,
        discountMinor: 980,
        taxMinor: 10120, // 53263 × 0.19 = 10119.97
        totalMinor: 63383,
        creditAppliedMinor: 1000,
        amountDueMinor: 62383,
        creditIssuedMinor: 0,
      });
    });
    it('never applies more credit than the total, nor any to an empty invoice', () => {
      assert.equal(invoiceTotals([line('recurring', 500)], { rate: '0', inclusive: false }, 10_000).creditAppliedMinor, 500);
      assert.equal(invoiceTotals([], { rate: '0', inclusive: false }, 10_000).creditAppliedMinor, 0);
    });
    it('makes the total the sum of its rounded lines plus tax (exclusive) or the lines alone (inclusive)', () => {
      fc.assert(
        fc.property(arbLines, arbRate, fc.boolean(), fc.integer({ min: 0, max: 100_000_000 }), (lines, rate, inclusive, credit) => {
          const t = invoiceTotals(lines, { rate, inclusive }, credit);
          const sum = lines.reduce((a, l) => a + l.amountMinor, 0);
          assert.equal(t.subtotalMinor - t.discountMinor, sum);
          assert.equal(t.totalMinor, inclusive ? sum : sum + t.taxMinor);
          assert.ok(t.creditAppliedMinor >= 0 && t.creditAppliedMinor <= Math.max(0, t.totalMinor));
          // A negative total is owed to the customer as credit: nothing is due.
          assert.equal(t.creditIssuedMinor, Math.max(0, -t.totalMinor));
          assert.equal(t.amountDueMinor, t.totalMinor - t.creditAppliedMinor + t.creditIssuedMinor);
          assert.ok(t.amountDueMinor >= 0);
          if (inclusive) assert.ok(Math.abs(t.taxMinor) <= Math.abs(t.totalMinor));
        }),
      );
    });
    it('writes ledger entries that always balance', () => {
      fc.assert(
        fc.property(arbLines, arbRate, fc.boolean(), fc.integer({ min: 0, max: 100_000_000 }), (lines, rate, inclusive, credit) => {
          const entries = invoiceLedgerEntries(invoiceTotals(lines, { rate, inclusive }, credit));
          assert.equal(entries.reduce((a, e) => a + e.amountMinor, 0), 0);
        }),
      );
    });
  });

  it('numbers invoices per brand with a fixed width', () => {
    assert.equal(invoiceNumber('demo', 42), 'DEMO-000042');
    assert.equal(invoiceNumber('acme-eu', 1_234_567), 'ACME-EU-1234567');
  });
});
