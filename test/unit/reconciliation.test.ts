/**
 * domain/reconciliation.ts: matching a settlement report against our records, claiming a shared
 * report's lines for one brand, and the payout net of fees — with property-based cases that no
 * line of either side is dropped or counted twice, and that a payout always balances.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { SettlementLine } from '../../gateway/adapter';
import {
  countItems,
  dayOffset,
  linesForBrand,
  OurRecord,
  payoutEntries,
  payoutTotals,
  previousUtcDay,
  reconcile,
  RECONCILIATION_KINDS,
} from '../../domain/reconciliation';

const DAY = '2026-11-24';
const opts = { reportDate: DAY, toleranceDays: 2 };

const line = (id: string, amountMinor: number, over: Partial<SettlementLine> = {}): SettlementLine => ({
  type: 'payment',
  id,
  paymentId: id,
  amountMinor,
  feeMinor: 30,
  currency: 'USD',
  occurredAt: `${DAY}T10:00:00.000Z`,
  ...over,
});
const ours = (id: string, gatewayId: string | null, amountMinor: number, over: Partial<OurRecord> = {}): OurRecord => ({
  type: 'payment',
  id,
  gatewayId,
  gatewayPaymentId: gatewayId,
  amountMinor,
  currency: 'USD',
  occurredAt: `${DAY}T10:00:00.000Z`,
  ...over,
});

describe('reconciliation rules', () => {
  it('matches lines to our records by the gateway id, never by amount', () => {
    const items = reconcile([line('ch_1', 1000), line('ch_2', 1000)], [ours('pay_b', 'ch_2', 1000), ours('pay_a', 'ch_1', 1000)], opts);
    assert.deepEqual(
      items.map((i) => [i.kind, i.lineId, i.ourRecordId]),
      [
        ['matched', 'ch_1', 'pay_a'],
        ['matched', 'ch_2', 'pay_b'],
      ],
    );
  });

  it('flags an amount or currency that differs, with the difference', () => {
    const items = reconcile([line('ch_1', 2500), line('ch_2', 900, { currency: 'EUR' })], [ours('pay_1', 'ch_1', 2400), ours('pay_2', 'ch_2', 900)], opts);
    assert.deepEqual(
      items.map((i) => [i.kind, i.detail.differenceMinor, i.detail.reason]),
      [
        ['amount_mismatch', 100, 'amounts differ'],
        ['amount_mismatch', 0, 'currencies differ'],
      ],
    );
  });

  it('reports a line we have no record of as missing on our side, and an adjustment too', () => {
    const items = reconcile([line('ch_x', 1700), line('adj_1', -5, { type: 'adjustment', paymentId: undefined })], [], opts);
    assert.deepEqual(
      items.map((i) => i.kind),
      ['missing_ours', 'missing_ours'],
    );
  });

  it('books a fee on its own against the payout', () => {
    const [item] = reconcile([line('fee_dp_1', 0, { type: 'fee', feeMinor: 1500, paymentId: 'ch_1' })], [], opts);
    assert.equal(item?.kind, 'matched');
    assert.equal(item?.ourRecordId, null);
  });

  it('matches refunds and chargebacks by their own ids, negative from the merchant side', () => {
    const items = reconcile(
      [line('re_1', -300, { type: 'refund', paymentId: 'ch_1' }), line('dp_1', -1000, { type: 'chargeback', paymentId: 'ch_2' })],
      [ours('rf_1', 're_1', -300, { type: 'refund', gatewayPaymentId: 'ch_1' }), ours('cb_1', 'dp_1', -1000, { type: 'chargeback', gatewayPaymentId: 'ch_2' }), ours('pay_1', 're_1', 300)],
      opts,
    );
    assert.deepEqual(
      items.map((i) => [i.kind, i.lineId ?? i.ourRecordId]),
      [
        ['matched', 're_1'],
        ['matched', 'dp_1'],
        ['missing_gateway', 'pay_1'],
      ],
    );
  });

  it('calls a record the gateway dates on a nearby day a timing difference, and one it does not know missing on its side', () => {
    const items = reconcile(
      [],
      [
        ours('pay_late', 'ch_late', 1500, { gatewayOccurredAt: '2026-11-25T00:00:05.000Z' }),
        ours('pay_early', 'ch_early', 1500, { gatewayOccurredAt: '2026-11-23' }),
        ours('pay_unknown', 'ch_madeup', 1900, { gatewayOccurredAt: null }),
        ours('pay_far', 'ch_far', 1900, { gatewayOccurredAt: '2026-11-29T00:00:00.000Z' }),
        ours('pay_same_day', 'ch_same', 1900, { gatewayOccurredAt: `${DAY}T08:00:00.000Z` }),
        ours('pay_no_id', null, 1900),
      ],
      opts,
    );
    assert.deepEqual(
      items.map((i) => [i.ourRecordId, i.kind]),
      [
        ['pay_late', 'timing_difference'],
        ['pay_early', 'timing_difference'],
        ['pay_unknown', 'missing_gateway'],
        ['pay_far', 'missing_gateway'],
        ['pay_same_day', 'missing_gateway'],
        ['pay_no_id', 'missing_gateway'],
      ],
    );
    assert.equal(items[0]?.detail.expectedOn, '2026-11-25');
  });

  it('reports duplicates instead of merging them', () => {
    const items = reconcile([line('ch_1', 1000), line('ch_1', 1000)], [ours('pay_1', 'ch_1', 1000), ours('pay_2', 'ch_1', 1000), ours('pay_3', 'ch_1', 1000)], opts);
    assert.deepEqual(
      items.map((i) => i.kind),
      ['matched', 'matched', 'missing_gateway'],
    );
  });

  it('keeps every line and every record in exactly one item (property)', () => {
    const gatewayIds = fc.constantFrom('ch_1', 'ch_2', 'ch_3', 'ch_4', 're_1', 'dp_1', null);
    const lineArb = fc.record({
      type: fc.constantFrom('payment', 'refund', 'chargeback', 'fee', 'adjustment') as fc.Arbitrary<SettlementLine['type']>,
      id: fc.constantFrom('ch_1', 'ch_2', 'ch_3', 're_1', 'dp_1', 'fee_1', 'adj_1'),
      amountMinor: fc.integer({ min: -5000, max: 5000 }),
      feeMinor: fc.nat({ max: 200 }),
      currency: fc.constantFrom('USD', 'EUR'),
    });
    const recordArb = fc.record({
      type: fc.constantFrom('payment', 'refund', 'chargeback') as fc.Arbitrary<OurRecord['type']>,
      gatewayId: gatewayIds,
      amountMinor: fc.integer({ min: -5000, max: 5000 }),
      currency: fc.constantFrom('USD', 'EUR'),
      gatewayOccurredAt: fc.option(fc.constantFrom('2026-11-22', '2026-11-23', DAY, '2026-11-25', '2026-11-28'), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 12 }), fc.array(recordArb, { maxLength: 12 }), fc.nat({ max: 3 }), (rawLines, rawRecords, toleranceDays) => {
        const lines = rawLines.map((l) => ({ ...l, paymentId: 'ch_1', occurredAt: `${DAY}T00:00:00.000Z` }));
        const records = rawRecords.map((r, n) => ({ ...r, id: `rec_${n}`, gatewayPaymentId: null, occurredAt: `${DAY}T00:00:00.000Z` }));
        const items = reconcile(lines, records, { reportDate: DAY, toleranceDays });
        // Ids may repeat on both sides: count items per line id against lines per line id.
        let lineSide = 0;
        for (const item of items) if (item.lineId !== null) lineSide += 1;
        assert.equal(lineSide, lines.length, 'one item per line');
        const recordIds = items.filter((i) => i.ourRecordId !== null).map((i) => i.ourRecordId);
        assert.equal(recordIds.length, records.length, 'one item per record');
        assert.equal(new Set(recordIds).size, records.length, 'no record counted twice');
        for (const r of records) assert.ok(recordIds.includes(r.id), `record ${r.id} kept`);
        // Per line id, items carrying it equal the lines carrying it.
        for (const id of new Set(lines.map((l) => l.id))) {
          assert.equal(items.filter((i) => i.lineId === id).length, lines.filter((l) => l.id === id).length);
        }
        const counts = countItems(items, lines.length, records.length);
        assert.equal(RECONCILIATION_KINDS.reduce((s, k) => s + counts[k], 0), items.length);
        // An item pairs a line and a record only when they are the same movement.
        for (const i of items) {
          if (i.lineId !== null && i.ourRecordId !== null) {
            assert.equal(i.lineId, i.ourGatewayId);
            assert.equal(i.lineType, i.ourRecordType);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('claims a shared report line by the brand that owns its payment', () => {
    const lines = [line('ch_a', 100), line('ch_b', 200), line('re_b', -50, { type: 'refund', paymentId: 'ch_b' }), line('ch_x', 300), line('adj', 7, { type: 'adjustment', paymentId: undefined })];
    const owners = new Map<string, string | null>([
      ['ch_a', 'acme'],
      ['ch_b', 'globex'],
      ['ch_x', null],
    ]);
    const acme = linesForBrand(lines, owners, 'acme');
    assert.deepEqual(
      acme.own.map((l) => l.id),
      ['ch_a'],
    );
    assert.deepEqual(
      acme.unclaimed.map((l) => l.id),
      ['ch_x', 'adj'],
    );
    assert.deepEqual(
      linesForBrand(lines, owners, 'globex').own.map((l) => l.id),
      ['ch_b', 're_b'],
    );
  });

  it('records a payout net of fees that always balances (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ amountMinor: fc.integer({ min: -100_000, max: 100_000 }), feeMinor: fc.nat({ max: 5000 }), currency: fc.constantFrom('USD', 'EUR') })), (raw) => {
        const lines = raw.map((r, n) => line(`ch_${n}`, r.amountMinor, r));
        const totals = payoutTotals(lines);
        for (const [currency, t] of Object.entries(totals)) {
          const mine = lines.filter((l) => l.currency === currency);
          assert.equal(t.gross, mine.reduce((s, l) => s + l.amountMinor, 0));
          assert.equal(t.fees, mine.reduce((s, l) => s + l.feeMinor, 0));
          assert.equal(t.net, t.gross - t.fees);
          assert.equal(t.lines, mine.length);
          const entries = payoutEntries(t);
          assert.equal(entries.reduce((s, e) => s + e.amountMinor, 0), 0);
          assert.deepEqual(
            entries.map((e) => e.account),
            ['cash', 'gateway_fees', 'gateway_clearing'],
          );
        }
      }),
    );
    assert.throws(() => payoutEntries({ gross: 100, fees: 10, net: 80 }), RangeError);
  });

  it('counts days in UTC', () => {
    assert.equal(dayOffset(DAY, '2026-11-25T00:00:00.000Z'), 1);
    assert.equal(dayOffset(DAY, '2026-11-24T23:59:59.999Z'), 0);
    assert.equal(dayOffset(DAY, '2026-11-23'), -1);
    assert.equal(previousUtcDay(new Date('2026-11-25T02:00:00.000Z')), DAY);
    assert.equal(previousUtcDay(new Date('2026-03-01T00:30:00.000Z')), '2026-02-28');
  });
});
