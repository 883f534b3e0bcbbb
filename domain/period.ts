/**
 * Billing periods. A period length is an ISO-8601 duration (P1M, P1Y, P14D, PT1M…). Period n
 * ends at anchor + n × duration, computed from the anchor each time, so month-end anchors do
 * not drift (Jan 31 → Feb 28 → Mar 31) and periods tile time with no gaps or overlaps.
 */

export interface IsoDuration {
  years: number;
  months: number;
  weeks: number;
  days: number;
  hours: number;
  minutes: number;
  seconds: number;
}

const ISO_DURATION = /^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?!$)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;

export function parseIsoDuration(text: string): IsoDuration {
  const m = ISO_DURATION.exec(text);
  if (!m) throw new RangeError(`"${text}" is not an ISO-8601 duration such as P1M, P1Y, P14D or PT5M`);
  const n = (i: number) => Number(m[i] ?? 0);
  const d = { years: n(1), months: n(2), weeks: n(3), days: n(4), hours: n(5), minutes: n(6), seconds: n(7) };
  if (Object.values(d).every((v) => v === 0)) throw new RangeError(`"${text}" is a zero-length duration`);
  return d;
}

function daysInMonth(year: number, month0: number): number {
  return new Date(Date.UTC(year, month0 + 1, 0)).getUTCDate();
}

/** anchor + times × duration, in UTC, clamping the day of month when a month is shorter. */
export function addDuration(anchor: Date, duration: IsoDuration, times = 1): Date {
  const totalMonths = (duration.years * 12 + duration.months) * times;
  const y0 = anchor.getUTCFullYear();
  const m0 = anchor.getUTCMonth() + totalMonths;
  const year = y0 + Math.floor(m0 / 12);
  const month = ((m0 % 12) + 12) % 12;
  const day = Math.min(anchor.getUTCDate(), daysInMonth(year, month));
  const base = Date.UTC(year, month, day, anchor.getUTCHours(), anchor.getUTCMinutes(), anchor.getUTCSeconds(), anchor.getUTCMilliseconds());
  const fixedMs =
    ((duration.weeks * 7 + duration.days) * 86_400 + duration.hours * 3600 + duration.minutes * 60 + duration.seconds) * 1000 * times;
  return new Date(base + fixedMs);
}

export interface BillingPeriod {
  /** 1 for the first period after the anchor. */
  number: number;
  start: string;
  end: string;
}

export function billingPeriod(anchorIso: string, durationText: string, number: number): BillingPeriod {
  if (!Number.isInteger(number) || number < 1) throw new RangeError(`period number must be a positive integer, got ${number}`);
  const anchor = new Date(anchorIso);
  if (Number.isNaN(anchor.getTime())) throw new RangeError(`"${anchorIso}" is not a timestamp`);
  const duration = parseIsoDuration(durationText);
  return {
    number,
    start: addDuration(anchor, duration, number - 1).toISOString(),
    end: addDuration(anchor, duration, number).toISOString(),
  };
}
