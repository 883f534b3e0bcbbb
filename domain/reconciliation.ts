/**
 * Reconciliation rules: which settlement lines belong to a brand, how each line of a gateway's
 * daily report is matched to our records, and what the day's payout is. Pure, so every rule is
 * unit- and property-tested: each line of either side ends up in exactly one item.
 */
import { settlementTotals, type SettlementLine, type SettlementTotals } from '../gateway/adapter';

export const RECONCILIATION_KINDS = ['matched', 'missing_ours', 'missing_gateway', 'amount_mismatch', 'timing_difference'] as const;
export type ReconciliationKind = (typeof RECONCILIATION_KINDS)[number];

/** The kinds an operator has to look at. A timing difference is expected to resolve itself. */
export const MISMATCH_KINDS: readonly ReconciliationKind[] = ['missing_ours', 'missing_gateway', 'amount_mismatch'];

export type OurRecordType = 'payment' | 'refund' | 'chargeback';

/** A money movement in our records that the gateway should report. */
export interface OurRecord {
  type: OurRecordType;
  /** Our id (payments.id, refunds.id, …). */
  id: string;
  /** The gateway's id of this movement (charge, refund or dispute id); null when we never got one. */
  gatewayId: string | null;
  gatewayPaymentId: string | null;
  /** Signed from the merchant's side, like report lines: payments positive, refunds and chargebacks negative. */
  amountMinor: number;
  currency: string;
  /** When we recorded it. */
  occurredAt: string;
  /**
   * For a record the report does not carry: when the gateway itself dated it (it knows the
   * movement, but books it on another day), or null when the gateway does not know it.
   * Left undefined when it was not asked, which counts as not known.
   */
  gatewayOccurredAt?: string | null;
}

export interface ReconciliationItem {
  kind: ReconciliationKind;
  lineType: SettlementLine['type'] | null;
  lineId: string | null;
  gatewayPaymentId: string | null;
  ourRecordType: OurRecordType | null;
  ourRecordId: string | null;
  ourGatewayId: string | null;
  reportAmountMinor: number | null;
  reportFeeMinor: number | null;
  ourAmountMinor: number | null;
  currency: string | null;
  detail: Record<string, unknown>;
}

export interface ReconcileOptions {
  /** The report's UTC day, YYYY-MM-DD. */
  reportDate: string;
  /**
   * How many days apart the gateway and we may date the same movement before it stops being a
   * timing difference and becomes missing on the gateway's side.
   */
  toleranceDays: number;
}

export type ReconciliationCounts = Record<ReconciliationKind, number> & { lines: number; records: number };

const DAY_MS = 86_400_000;

/** Whole days from `from` (YYYY-MM-DD) to the UTC day of `iso`: 1 is the next day. */
export function dayOffset(from: string, iso: string): number {
  const start = Date.parse(`${from}T00:00:00.000Z`);
  const day = Date.parse(`${iso.slice(0, 10)}T00:00:00.000Z`);
  return Math.round((day - start) / DAY_MS);
}

/** The UTC day before `now`, YYYY-MM-DD: what a run at 02:00 reconciles. */
export function previousUtcDay(now: Date): string {
  return new Date(now.getTime() - DAY_MS).toISOString().slice(0, 10);
}

/** The key a report line and a record of ours share when they are the same movement. */
function lineKey(line: SettlementLine): string | null {
  if (line.type === 'payment' || line.type === 'refund' || line.type === 'chargeback') return `${line.type}:${line.id}`;
  return null;
}

/**
 * Matches a settlement report against our records. Lines are matched by the gateway's id of the
 * movement (a payment line by its charge id, a refund by its refund id, a chargeback by its
 * dispute id), never by amount, so two equal payments cannot swap.
 *
 * - a line with a record of ours: `matched` when amount and currency agree, else `amount_mismatch`;
 * - a `fee` line (a fee on its own, e.g. a chargeback fee) is `matched` against the payout that books it;
 * - any other line we have no record of (an `adjustment` included): `missing_ours`;
 * - a record of ours not on the report: a `timing_difference` when the gateway has it dated within
 *   `toleranceDays` of the report day (it will be, or was, on another day's report), otherwise
 *   `missing_gateway`.
 *
 * Every line and every record ends up in exactly one item; duplicates are reported, not merged.
 */
export function reconcile(lines: readonly SettlementLine[], ours: readonly OurRecord[], options: ReconcileOptions): ReconciliationItem[] {
  const byKey = new Map<string, OurRecord[]>();
  for (const record of ours) {
    if (record.gatewayId === null) continue;
    const key = `${record.type}:${record.gatewayId}`;
    const list = byKey.get(key);
    if (list) list.push(record);
    else byKey.set(key, [record]);
  }
  const used = new Set<OurRecord>();
  const items: ReconciliationItem[] = [];
  const lineSide = (line: SettlementLine) => ({
    lineType: line.type,
    lineId: line.id,
    gatewayPaymentId: line.paymentId ?? (line.type === 'payment' ? line.id : null),
    reportAmountMinor: line.amountMinor,
    reportFeeMinor: line.feeMinor,
    currency: line.currency,
  });
  const noRecord = { ourRecordType: null, ourRecordId: null, ourGatewayId: null, ourAmountMinor: null };

  for (const line of lines) {
    const key = lineKey(line);
    if (key === null) {
      items.push(
        line.type === 'fee'
          ? { kind: 'matched', ...lineSide(line), ...noRecord, detail: { reason: 'a fee on its own: booked with the payout' } }
          : { kind: 'missing_ours', ...lineSide(line), ...noRecord, detail: { reason: `an ${line.type} line: nothing in our records explains it` } },
      );
      continue;
    }
    const record = byKey.get(key)?.find((r) => !used.has(r));
    if (!record) {
      items.push({ kind: 'missing_ours', ...lineSide(line), ...noRecord, detail: { reason: `the gateway reports this ${line.type}; we have no record of it` } });
      continue;
    }
    used.add(record);
    const agrees = record.amountMinor === line.amountMinor && record.currency === line.currency;
    items.push({
      kind: agrees ? 'matched' : 'amount_mismatch',
      ...lineSide(line),
      ourRecordType: record.type,
      ourRecordId: record.id,
      ourGatewayId: record.gatewayId,
      ourAmountMinor: record.amountMinor,
      detail: agrees
        ? {}
        : {
            reason: record.currency === line.currency ? 'amounts differ' : 'currencies differ',
            ourCurrency: record.currency,
            differenceMinor: line.amountMinor - record.amountMinor,
          },
    });
  }

  for (const record of ours) {
    if (used.has(record)) continue;
    const ourSide = {
      lineType: null,
      lineId: null,
      reportAmountMinor: null,
      reportFeeMinor: null,
      gatewayPaymentId: record.gatewayPaymentId,
      ourRecordType: record.type,
      ourRecordId: record.id,
      ourGatewayId: record.gatewayId,
      ourAmountMinor: record.amountMinor,
      currency: record.currency,
    };
    const duplicate = record.gatewayId !== null && (byKey.get(`${record.type}:${record.gatewayId}`)?.length ?? 0) > 1;
    const seen = record.gatewayOccurredAt;
    const offset = typeof seen === 'string' ? dayOffset(options.reportDate, seen) : null;
    if (!duplicate && offset !== null && offset !== 0 && Math.abs(offset) <= options.toleranceDays) {
      const expectedOn = seen!.slice(0, 10);
      items.push({ kind: 'timing_difference', ...ourSide, detail: { reason: `the gateway dates it ${expectedOn}: expected on that day's report`, expectedOn } });
      continue;
    }
    const reason =
      record.gatewayId === null
        ? 'we recorded it without a gateway id'
        : duplicate
          ? 'another record of ours carries the same gateway id'
          : seen === undefined || seen === null
            ? 'the gateway does not know it'
            : offset === 0
              ? 'the gateway dates it on the report day, but the report leaves it out'
              : `the gateway dates it ${seen.slice(0, 10)}, more than ${options.toleranceDays} day(s) from the report day`;
    items.push({ kind: 'missing_gateway', ...ourSide, detail: { reason, ...(typeof seen === 'string' ? { gatewayOccurredAt: seen } : {}) } });
  }
  return items;
}

export function countItems(items: readonly ReconciliationItem[], lines: number, records: number): ReconciliationCounts {
  const counts = Object.fromEntries(RECONCILIATION_KINDS.map((k) => [k, 0])) as ReconciliationCounts;
  for (const item of items) counts[item.kind] += 1;
  counts.lines = lines;
  counts.records = records;
  return counts;
}

export function mismatchCount(counts: Partial<Record<ReconciliationKind, number>>): number {
  return MISMATCH_KINDS.reduce((sum, k) => sum + (counts[k] ?? 0), 0);
}

/**
 * Who a line belongs to: the brand of the payment it moves (by the gateway's payment id), or
 * null when no brand claims it. A shared gateway account reports every brand's money on one
 * report, and settlement lines carry no metadata of their own.
 */
export type LineOwners = ReadonlyMap<string, string | null>;

export function linePaymentId(line: SettlementLine): string | null {
  return line.paymentId ?? (line.type === 'payment' ? line.id : null);
}

/**
 * Splits a shared report for one brand: its own lines (reconciled and booked in its payout) and
 * the lines no brand claims (reconciled as missing on our side in every brand's run, so an
 * operator of each brand sees them, but booked in no brand's payout, so no money counts twice).
 * Another brand's lines are that brand's run's business.
 */
export function linesForBrand(lines: readonly SettlementLine[], owners: LineOwners, brandId: string): { own: SettlementLine[]; unclaimed: SettlementLine[] } {
  const own: SettlementLine[] = [];
  const unclaimed: SettlementLine[] = [];
  for (const line of lines) {
    const paymentId = linePaymentId(line);
    const owner = paymentId === null ? null : (owners.get(paymentId) ?? null);
    if (owner === brandId) own.push(line);
    else if (owner === null) unclaimed.push(line);
  }
  return { own, unclaimed };
}

/**
 * The brand's payout per currency, net of fees: gross = Σ amounts, fees = Σ fees, net = gross − fees.
 * Its ledger transaction clears what the payments put into gateway clearing.
 */
export function payoutTotals(lines: readonly SettlementLine[]): Record<string, SettlementTotals & { lines: number }> {
  const totals = settlementTotals(lines);
  const out: Record<string, SettlementTotals & { lines: number }> = {};
  for (const [currency, t] of Object.entries(totals)) out[currency] = { ...t, lines: lines.filter((l) => l.currency === currency).length };
  return out;
}

/** DR cash net, DR gateway fees, CR gateway clearing gross: balanced by construction. */
export function payoutEntries(t: { gross: number; fees: number; net: number }): Array<{ account: string; amountMinor: number }> {
  if (t.net !== t.gross - t.fees) throw new RangeError(`payout net ${t.net} is not gross ${t.gross} less fees ${t.fees}`);
  return [
    { account: 'cash', amountMinor: t.net },
    { account: 'gateway_fees', amountMinor: t.fees },
    { account: 'gateway_clearing', amountMinor: -t.gross },
  ];
}
