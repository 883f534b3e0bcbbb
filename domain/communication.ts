/**
 * The rules of customer communication, pure so the communication workflow can apply them to
 * workflow time: quiet hours in the customer's time zone, time zone validation, opt-out rules
 * and the placeholder templates messages are rendered from.
 */
import type { MessageCategory } from '../workflows/shared';

export const MESSAGE_CATEGORIES: readonly MessageCategory[] = ['transactional', 'usage', 'nurture', 'upgrade_offers', 'marketing'];

/** Why a message could not be delivered; the ones that retrying cannot fix are not retried. */
export const CommunicationErrors = {
  /** The SMTP server refused the recipient or the message for good (5xx). */
  RECIPIENT_REJECTED: 'RECIPIENT_REJECTED',
  /** The customer's webhook answered with a 4xx other than 408/429. */
  WEBHOOK_REJECTED: 'WEBHOOK_REJECTED',
  /** The customer's webhook was unreachable or answered 408, 429 or 5xx. */
  WEBHOOK_UNAVAILABLE: 'WEBHOOK_UNAVAILABLE',
  /** The brand's template does not parse. */
  TEMPLATE_INVALID: 'TEMPLATE_INVALID',
  /** The invoice an invoice-ready message names does not exist. */
  INVOICE_MISSING: 'INVOICE_MISSING',
  /** The delivery record is gone. */
  MESSAGE_MISSING: 'MESSAGE_MISSING',
} as const;

export const NON_RETRYABLE_COMMUNICATION_ERRORS: string[] = [
  CommunicationErrors.RECIPIENT_REJECTED,
  CommunicationErrors.WEBHOOK_REJECTED,
  CommunicationErrors.TEMPLATE_INVALID,
  CommunicationErrors.INVOICE_MISSING,
  CommunicationErrors.MESSAGE_MISSING,
];

/** Local wall-clock times "HH:MM"; the window may wrap midnight (21:00–08:00). */
export interface QuietHours {
  start: string;
  end: string;
}

const CLOCK = /^([01]\d|2[0-3]):([0-5]\d)$/;
const MINUTE_MS = 60_000;
const DAY_MINUTES = 24 * 60;

function clockMinutes(hhmm: string): number {
  const m = CLOCK.exec(hhmm);
  if (!m) throw new RangeError(`"${hhmm}" is not a time of day HH:MM`);
  return Number(m[1]) * 60 + Number(m[2]);
}

// Building a DateTimeFormat is far costlier than using one; zones are few.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** An IANA zone name the runtime knows ("Europe/Berlin", "UTC"); offsets and abbreviations are not. */
export function isValidTimeZone(timeZone: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/.test(timeZone)) return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  /** Milliseconds since local midnight. */
  msOfDay: number;
}

function wallClock(instantMs: number, timeZone: string): WallClock {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(instantMs))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  const ms = ((instantMs % 1000) + 1000) % 1000;
  return {
    year: parts.year ?? 0,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    msOfDay: (((parts.hour ?? 0) * 60 + (parts.minute ?? 0)) * 60 + (parts.second ?? 0)) * 1000 + ms,
  };
}

function insideWindow(msOfDay: number, start: number, end: number): boolean {
  const minute = msOfDay / MINUTE_MS;
  return start < end ? minute >= start && minute < end : minute >= start || minute < end;
}

/** Whether `instant` falls inside the quiet hours, read on the wall clock of `timeZone`. */
export function isQuietTime(instant: Date, timeZone: string, quiet: QuietHours | null): boolean {
  if (!quiet) return false;
  const start = clockMinutes(quiet.start);
  const end = clockMinutes(quiet.end);
  if (start === end) return false;
  return insideWindow(wallClock(instant.getTime(), timeZone).msOfDay, start, end);
}

/**
 * When a message requested at `instant` may be sent: `instant` itself outside quiet hours,
 * otherwise the first later moment that is not quiet on the customer's wall clock: normally
 * when it reads `quiet.end`, or a daylight-saving change that jumps out of the window first.
 * Equal start and end mean no quiet hours.
 */
export function quietHoursEnd(instant: Date, timeZone: string, quiet: QuietHours | null): Date {
  if (!isQuietTime(instant, timeZone, quiet)) return instant;
  const q = quiet as QuietHours;
  const start = clockMinutes(q.start);
  const end = clockMinutes(q.end);
  const day = DAY_MINUTES * MINUTE_MS;
  // Walk from one offset change to the next: while the offset holds, the wall clock moves with
  // real time and reaches `end` after `wallWait`. Zones never change offset twice within a day,
  // so the same offset at both ends of a wait means no change between them.
  let t = instant.getTime();
  for (;;) {
    const wallWait = (((end * MINUTE_MS - wallClock(t, timeZone).msOfDay) % day) + day) % day;
    const reached = t + wallWait;
    const change = firstOffsetChange(t, reached, timeZone);
    if (change === null) return new Date(reached);
    if (!insideWindow(wallClock(change, timeZone).msOfDay, start, end)) return new Date(change);
    t = change;
  }
}

/** The first millisecond in (from, to] at which the zone's offset differs from its offset at `from`. */
function firstOffsetChange(from: number, to: number, timeZone: string): number | null {
  const initial = offsetMs(from, timeZone);
  if (offsetMs(to, timeZone) === initial) return null;
  let lo = from;
  let hi = to;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (offsetMs(mid, timeZone) === initial) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The zone's offset from UTC at `instantMs` (positive east of Greenwich), to the second. */
function offsetMs(instantMs: number, timeZone: string): number {
  const w = wallClock(instantMs, timeZone);
  const seconds = Math.floor(instantMs / 1000) * 1000;
  return Date.UTC(w.year, w.month - 1, w.day) + (w.msOfDay - (((instantMs % 1000) + 1000) % 1000)) - seconds;
}

/**
 * Quiet hours hold back what can wait (usage notices, nurture, offers, marketing). Transactional
 * messages (invoices, failed payments, suspension, disputes) go at once: the customer needs them
 * to act in time, and they are what they asked for by doing business with the brand.
 */
export function quietHoursApply(category: MessageCategory): boolean {
  return category !== 'transactional';
}

/** Categories a customer may opt out of: never transactional, and only what the brand allows. */
export function mayOptOut(category: MessageCategory, allowedByPolicy: readonly string[]): boolean {
  return category !== 'transactional' && allowedByPolicy.includes(category);
}

/** Whether a message of `category` is suppressed for a customer with these opt-outs. */
export function isOptedOut(category: MessageCategory, optedOut: readonly string[], allowedByPolicy: readonly string[]): boolean {
  return optedOut.includes(category) && mayOptOut(category, allowedByPolicy);
}

// ---------------------------------------------------------------------------------------------
// Templates: {{name}} inserts a value, {{#name}}…{{/name}} keeps its content only when the value
// is present and not empty, {{^name}}…{{/name}} only when it is absent. Nothing else is syntax.

export type TemplateVars = Record<string, string>;

type Node = { kind: 'text'; value: string } | { kind: 'var'; name: string } | { kind: 'section'; name: string; inverted: boolean; body: Node[] };

const TAG = /\{\{\s*([#^/]?)\s*([A-Za-z][A-Za-z0-9_]*)\s*\}\}/g;

export class TemplateSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateSyntaxError';
  }
}

function parse(source: string): Node[] {
  const root: Node[] = [];
  const stack: Array<{ name: string; nodes: Node[] }> = [{ name: '', nodes: root }];
  let last = 0;
  const top = () => stack[stack.length - 1]!.nodes;
  for (const m of source.matchAll(TAG)) {
    const [whole, sigil, name] = m as unknown as [string, string, string];
    if (m.index > last) top().push({ kind: 'text', value: source.slice(last, m.index) });
    last = m.index + whole.length;
    if (sigil === '') {
      top().push({ kind: 'var', name });
    } else if (sigil === '/') {
      const open = stack.pop();
      if (!open || open.name !== name || stack.length === 0) throw new TemplateSyntaxError(`{{/${name}}} closes no open {{#${name}}}`);
    } else {
      const section: Node = { kind: 'section', name, inverted: sigil === '^', body: [] };
      top().push(section);
      stack.push({ name, nodes: section.body });
    }
  }
  if (stack.length > 1) throw new TemplateSyntaxError(`{{#${stack[stack.length - 1]!.name}}} is never closed`);
  if (last < source.length) root.push({ kind: 'text', value: source.slice(last) });
  // Anything left that looks like a tag is a typo the brand should hear about, not literal text.
  const check = (nodes: Node[]): void => {
    for (const n of nodes) {
      if (n.kind === 'section') check(n.body);
      else if (n.kind === 'text' && n.value.includes('{{')) {
        const at = n.value.indexOf('{{');
        throw new TemplateSyntaxError(`malformed placeholder "${n.value.slice(at, at + 24)}"`);
      }
    }
  };
  check(root);
  return root;
}

/** The placeholders a template uses (names in {{name}} and sections), for validating overrides. */
export function templatePlaceholders(source: string): string[] {
  const names = new Set<string>();
  const walk = (nodes: Node[]) => {
    for (const n of nodes) {
      if (n.kind === 'var') names.add(n.name);
      if (n.kind === 'section') {
        names.add(n.name);
        walk(n.body);
      }
    }
  };
  walk(parse(source));
  return [...names];
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);
}

/**
 * Renders one template part. `escape` is applied to every inserted value (HTML escaping for the
 * HTML part), never to the template's own text, which the brand wrote as markup.
 */
export function renderTemplate(source: string, vars: TemplateVars, escape: (value: string) => string = (v) => v): string {
  const out: string[] = [];
  const emit = (nodes: Node[]) => {
    for (const n of nodes) {
      if (n.kind === 'text') out.push(n.value);
      else if (n.kind === 'var') out.push(escape(vars[n.name] ?? ''));
      else {
        const present = (vars[n.name] ?? '') !== '';
        if (present !== n.inverted) emit(n.body);
      }
    }
  };
  emit(parse(source));
  return out.join('');
}

export interface MessageSource {
  subject: string;
  text: string;
  html: string;
}

export interface RenderedMessage {
  subject: string;
  text: string;
  html: string;
}

/** Renders subject (one line: mail headers must not carry line breaks from data), text and HTML. */
export function renderMessage(source: MessageSource, vars: TemplateVars): RenderedMessage {
  return {
    subject: renderTemplate(source.subject, vars).replace(/\s+/g, ' ').trim(),
    text: renderTemplate(source.text, vars),
    html: renderTemplate(source.html, vars, escapeHtml),
  };
}
