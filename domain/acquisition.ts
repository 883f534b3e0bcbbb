/**
 * The acquisition funnel's arithmetic: conversion rates and totals over funnel rows. Exact:
 * counts and minor units are bigints, and a rate is a decimal string rounded once.
 */

/** Revenue attributed to a funnel row, in one currency. */
export interface FunnelRevenue {
  currency: string;
  minor: bigint;
}

export interface FunnelCounts {
  leads: number;
  conversions: number;
  expired: number;
  open: number;
  /** Sorted by currency code; absent currencies are left out, not listed as zero. */
  revenue: FunnelRevenue[];
}

export interface FunnelRow extends FunnelCounts {
  source: string;
  /** null when the leads came without a campaign. */
  campaign: string | null;
  conversionRate: string;
}

export const RATE_DECIMALS = 4;

/**
 * conversions / leads as a decimal string with four places, rounded half away from zero
 * ("0.3333", "0.6667", "1.0000"); "0.0000" when there are no leads, so an empty funnel reads as
 * nothing converted rather than as an error.
 */
export function conversionRate(conversions: number | bigint, leads: number | bigint): string {
  const c = BigInt(conversions);
  const l = BigInt(leads);
  if (c < 0n || l < 0n) throw new RangeError('counts cannot be negative');
  if (c > l) throw new RangeError(`${c} conversions out of ${l} leads`);
  if (l === 0n) return `0.${'0'.repeat(RATE_DECIMALS)}`;
  const scale = 10n ** BigInt(RATE_DECIMALS);
  const scaled = (2n * c * scale + l) / (2n * l); // half away from zero for non-negative values
  return `${scaled / scale}.${(scaled % scale).toString().padStart(RATE_DECIMALS, '0')}`;
}

/** Adds revenue lists currency by currency; never mixes currencies. */
export function sumRevenue(lists: FunnelRevenue[][]): FunnelRevenue[] {
  const byCurrency = new Map<string, bigint>();
  for (const list of lists) {
    for (const r of list) byCurrency.set(r.currency, (byCurrency.get(r.currency) ?? 0n) + r.minor);
  }
  return [...byCurrency.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([currency, minor]) => ({ currency, minor }));
}

/** The whole funnel: every count summed, revenue per currency, and the overall rate. */
export function funnelTotals(rows: FunnelCounts[]): FunnelCounts & { conversionRate: string } {
  const sum = (f: (r: FunnelCounts) => number) => rows.reduce((acc, r) => acc + f(r), 0);
  const leads = sum((r) => r.leads);
  const conversions = sum((r) => r.conversions);
  return {
    leads,
    conversions,
    expired: sum((r) => r.expired),
    open: sum((r) => r.open),
    conversionRate: conversionRate(conversions, leads),
    revenue: sumRevenue(rows.map((r) => r.revenue)),
  };
}
