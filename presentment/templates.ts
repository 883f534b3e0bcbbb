/**
 * The maintained library of customer messages: subject, plain text and HTML for every lifecycle
 * event, with {{placeholders}} filled from the event's data (domain/communication.ts renders
 * them). A brand's own version of a template (table message_templates) wins over the library;
 * a name the library does not know (nurture steps are named by each brand's acquisition policy)
 * falls back to a generic message for its category rather than failing.
 */
import { escapeHtml, MessageSource, templatePlaceholders, TemplateVars } from '../domain/communication';
import type { MessageCategory } from '../workflows/shared';
import { formatDate, formatMoney } from './format';

/** Template names, as the acquisition policy spells nurture steps. */
export const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

interface LibraryEntry {
  subject: string;
  /** Paragraphs, plain text with placeholders; the text and HTML parts are both built from them. */
  paragraphs: string[];
}

const LIBRARY: Record<string, LibraryEntry> = {
  welcome: {
    subject: 'Welcome to {{brandName}}',
    paragraphs: ['Welcome to {{brandName}}.{{#plan}} Your {{plan}} plan is active.{{/plan}}', 'You will get an invoice at the start of every billing period and a message whenever something about your account needs your attention.'],
  },
  'nurture-welcome': {
    subject: 'Getting started with {{brandName}}',
    paragraphs: ['Thanks for your interest in {{brandName}}.', 'When you are ready, activate your account and pick the plan that fits: it takes a minute.'],
  },
  'nurture-reminder': {
    subject: 'Still thinking about {{brandName}}?',
    paragraphs: ['You signed up for {{brandName}} a few days ago but have not activated your account yet.', 'Your offer is still open. Reply to this message if anything is holding you back.'],
  },
  'usage-allowance-80': {
    subject: 'You have used {{threshold}}% of your {{metric}} allowance',
    paragraphs: [
      'You have used {{threshold}}% of the {{metric}} allowance included in your plan this billing period{{#quantity}} ({{quantity}} of {{included}}){{/quantity}}.',
      'Usage beyond the allowance is billed at your plan’s overage rate. A larger plan may cost less if you expect to keep this pace.',
    ],
  },
  'usage-allowance-used': {
    subject: 'You have used all of your {{metric}} allowance',
    paragraphs: [
      'You have used all of the {{metric}} allowance included in your plan this billing period{{#quantity}} ({{quantity}} of {{included}}){{/quantity}}.',
      'Further usage this period is billed at your plan’s overage rate and appears on your next invoice.',
    ],
  },
  'invoice-ready': {
    subject: 'Invoice {{number}} from {{brandName}}: {{amountDue}} due {{dueDate}}',
    paragraphs: ['Invoice {{number}} from {{brandName}}{{#period}} for {{period}}{{/period}} is ready.', 'Amount due: {{amountDue}}, by {{dueDate}}.', 'View the invoice: {{viewUrl}}'],
  },
  'payment-failed': {
    subject: 'Your payment to {{brandName}} did not go through',
    paragraphs: [
      'We could not collect your payment{{#message}}: {{message}}{{/message}}.',
      'We will try again automatically over the next days. If your card has changed, update your payment method to settle the invoice at once.',
    ],
  },
  'payment-failed-update-method': {
    subject: 'Action needed: update your payment method for {{brandName}}',
    paragraphs: [
      'Your bank declined the payment{{#message}}: {{message}}{{/message}}. Retrying the same card will not help.',
      'Please add a new payment method to keep your service running.',
    ],
  },
  'payment-retry-failed': {
    subject: 'Your payment to {{brandName}} failed again',
    paragraphs: [
      'We tried to collect your payment again{{#attempt}} (attempt {{attempt}}){{/attempt}} and it was declined.',
      '{{#finalRetry}}This was the last automatic attempt: without a new payment method your service will be suspended.{{/finalRetry}}{{^finalRetry}}We will try again. Updating your payment method settles the invoice at once.{{/finalRetry}}',
    ],
  },
  'payment-recovered': {
    subject: 'Payment received: thank you',
    paragraphs: ['Your payment to {{brandName}} went through and your account is in good standing again.'],
  },
  'service-suspended': {
    subject: 'Your {{brandName}} service is suspended',
    paragraphs: ['Because your invoice is still unpaid, your service is suspended.', 'Update your payment method to pay the invoice; your service is restored as soon as it is paid.'],
  },
  'service-restored': {
    subject: 'Your {{brandName}} service is restored',
    paragraphs: ['Thank you for your payment. Your service is active again.'],
  },
  'account-written-off': {
    subject: 'Your {{brandName}} account is closed',
    paragraphs: ['Your invoice stayed unpaid past our final deadline, so your account has been closed and the balance written off.', 'Reply to this message if you believe this is a mistake.'],
  },
  'upgrade-offer': {
    subject: '{{#planName}}The {{planName}} plan may save you money{{/planName}}{{^planName}}An offer for you from {{brandName}}{{/planName}}',
    paragraphs: [
      '{{#planName}}The {{planName}} plan may suit the way you use {{brandName}} better{{/planName}}{{^planName}}A larger plan may suit the way you use {{brandName}} better{{/planName}}{{#currentPlan}} than your {{currentPlan}} plan{{/currentPlan}}.',
      '{{#suggestedCost}}Your usage last period cost {{currentCost}}; on {{planName}} it would have cost {{suggestedCost}}.{{/suggestedCost}}',
      'You can change plans at any time; you only pay the difference for the rest of the period.',
    ],
  },
  'plan-changed': {
    subject: 'Your {{brandName}} plan has changed',
    paragraphs: [
      'Your plan has changed{{#fromPlan}} from {{fromPlan}}{{/fromPlan}}{{#toPlan}} to {{toPlan}}{{/toPlan}}{{^toPlan}}{{#plan}} to {{plan}}{{/plan}}{{/toPlan}}.',
      '{{#proration}}The difference for the rest of this period is {{proration}}.{{/proration}}',
    ],
  },
  'plan-change-scheduled': {
    subject: 'Your {{brandName}} plan change is scheduled',
    paragraphs: ['Your plan will change{{#toPlan}} to {{toPlan}}{{/toPlan}}{{^toPlan}}{{#plan}} to {{plan}}{{/plan}}{{/toPlan}}{{#effectiveAt}} on {{effectiveAt}}{{/effectiveAt}}{{^effectiveAt}} at the end of the current billing period{{/effectiveAt}}.'],
  },
  'subscription-cancelled': {
    subject: 'Your {{brandName}} subscription is cancelled',
    paragraphs: ['Your {{#plan}}{{plan}} {{/plan}}subscription has been cancelled. Any amount still due is on your final invoice{{#finalInvoice}} {{finalInvoice}}{{/finalInvoice}}.', 'We are sorry to see you go.'],
  },
  'cancellation-scheduled': {
    subject: 'Your {{brandName}} subscription will end',
    paragraphs: ['Your subscription is cancelled{{#effectiveAt}} and ends on {{effectiveAt}}{{/effectiveAt}}{{^effectiveAt}} and ends with the current billing period{{/effectiveAt}}. Until then nothing changes.'],
  },
  'dispute-opened': {
    subject: 'We received your dispute',
    paragraphs: ['We have opened a dispute{{#disputed}} over {{disputed}}{{/disputed}}{{^disputed}}{{#amount}} over {{amount}}{{/amount}}{{/disputed}}{{#reason}} ({{reason}}){{/reason}}.', 'We will look into it and tell you the outcome.'],
  },
  'dispute-escalated': {
    subject: 'Your dispute is with our team',
    paragraphs: [
      'Your dispute{{#disputed}} over {{disputed}}{{/disputed}}{{^disputed}}{{#amount}} over {{amount}}{{/amount}}{{/disputed}} needs a closer look, so a member of our team is reviewing it.',
      'We will tell you their decision{{#decisionDeadline}} by {{decisionDeadline}}{{/decisionDeadline}}.',
    ],
  },
  'dispute-resolved': {
    subject: 'Your dispute is resolved',
    paragraphs: [
      'Your dispute{{#disputed}} over {{disputed}}{{/disputed}} has been resolved.',
      '{{#credited}}We credited {{credited}} to your account.{{/credited}}{{^credited}}We reviewed it and found the charge correct, so no credit was issued.{{/credited}}',
    ],
  },
};

/** Used for a template the library does not know, by the message's category. */
const GENERIC: Record<MessageCategory, LibraryEntry> = {
  transactional: { subject: 'An update on your {{brandName}} account', paragraphs: ['There is an update on your {{brandName}} account. Sign in to see the details.'] },
  usage: { subject: 'Your {{brandName}} usage', paragraphs: ['There is an update on your usage of {{brandName}} this billing period. Sign in to see the details.'] },
  nurture: { subject: 'Still interested in {{brandName}}?', paragraphs: ['Thanks for your interest in {{brandName}}. Activate your account whenever you are ready.'] },
  upgrade_offers: { subject: 'An offer for you from {{brandName}}', paragraphs: ['We have an offer that may suit the way you use {{brandName}}. Sign in to see it.'] },
  marketing: { subject: 'News from {{brandName}}', paragraphs: ['There is news from {{brandName}}. Sign in to read more.'] },
};

const GREETING = '{{greeting}}';
const SIGNATURE = '{{brandName}}';

function textPart(entry: LibraryEntry): string {
  return [GREETING, ...entry.paragraphs, SIGNATURE].join('\n\n') + '\n';
}

/** Inline styles only: mail clients drop <style>. The paragraphs are text, so they are escaped. */
function htmlPart(entry: LibraryEntry): string {
  const p = (s: string) => `<p style="margin:0 0 14px;">${escapeHtml(s)}</p>`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(entry.subject)}</title></head>
<body style="margin:0;padding:0;background:#eef1f4;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#eef1f4;padding:24px 0;">
<tr><td align="center">
<table role="presentation" width="560" cellpadding="0" cellspacing="0" style="max-width:560px;width:100%;background:#ffffff;border-radius:4px;font-family:Helvetica,Arial,sans-serif;color:#1f2933;font-size:14px;line-height:1.5;">
<tr><td style="padding:24px 32px;border-bottom:3px solid #1f4e79;font-size:20px;font-weight:bold;color:#1f4e79;">{{brandName}}</td></tr>
<tr><td style="padding:24px 32px 8px;">
${[GREETING, ...entry.paragraphs].map(p).join('\n')}
</td></tr>
<tr><td style="padding:8px 32px 24px;color:#616e7c;font-size:12px;">{{brandName}}</td></tr>
</table>
</td></tr></table>
</body></html>
`;
}

function source(entry: LibraryEntry): MessageSource {
  return { subject: entry.subject, text: textPart(entry), html: htmlPart(entry) };
}

/** Every template the library maintains, by name. */
export const BUILT_IN_TEMPLATES: ReadonlyMap<string, MessageSource> = new Map(Object.entries(LIBRARY).map(([name, entry]) => [name, source(entry)]));

export type TemplateOrigin = 'brand' | 'library' | 'generic';

/** The brand's own version first, then the library, then the generic message of the category. */
export function resolveTemplate(name: string, category: MessageCategory, brandOverride: MessageSource | null): { source: MessageSource; origin: TemplateOrigin } {
  if (brandOverride) return { source: brandOverride, origin: 'brand' };
  const builtIn = BUILT_IN_TEMPLATES.get(name);
  if (builtIn) return { source: builtIn, origin: 'library' };
  return { source: source(GENERIC[category]), origin: 'generic' };
}

/** Placeholders every message can use, whatever its data. */
export const COMMON_PLACEHOLDERS = ['brandName', 'customerName', 'greeting', 'email'] as const;

/** Problems with a brand's template (unbalanced sections, malformed placeholders), by part. */
export function templateProblems(t: MessageSource): Array<{ part: keyof MessageSource; message: string }> {
  const problems: Array<{ part: keyof MessageSource; message: string }> = [];
  for (const part of ['subject', 'text', 'html'] as const) {
    try {
      templatePlaceholders(t[part]);
    } catch (err) {
      problems.push({ part, message: (err as Error).message });
    }
  }
  return problems;
}

const MINOR_KEY = /^(.+)Minor$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

/** "USD 12.50" from minor units, or null for what is not an amount or a known currency. */
function formattedAmount(minor: unknown, currency: unknown): string | null {
  if (typeof currency !== 'string') return null;
  const value = typeof minor === 'number' && Number.isSafeInteger(minor) ? BigInt(minor) : typeof minor === 'string' && /^-?\d{1,30}$/.test(minor) ? BigInt(minor) : null;
  if (value === null) return null;
  try {
    // A zero amount reads as absent, so "{{#credited}}" is false when nothing was credited.
    return value === 0n ? '' : formatMoney(value, currency);
  } catch {
    // An unknown currency code: the amount is left out rather than shown wrong.
    return null;
  }
}

/**
 * The values a message's placeholders read: the brand and customer, and the event's data.
 * Amounts arrive as `<name>Minor` beside a `currency`, or as `{ minor, currency }`, and are
 * offered formatted as `<name>`; instants as dates; `true` as "yes" and `false` as empty, so
 * sections can test them.
 */
export function messageVars(input: { brandName: string; customerName: string | null; email: string; data: Record<string, unknown> }): TemplateVars {
  const vars: TemplateVars = {};
  for (const [key, value] of Object.entries(input.data)) {
    if (typeof value === 'string') vars[key] = INSTANT.test(value) && !Number.isNaN(Date.parse(value)) ? formatDate(value) : value;
    else if (typeof value === 'number' && Number.isFinite(value)) vars[key] = String(value);
    else if (typeof value === 'boolean') vars[key] = value ? 'yes' : '';
    else if (value && typeof value === 'object' && 'minor' in value && 'currency' in value) {
      const amount = formattedAmount(value.minor, value.currency);
      if (amount !== null) vars[key] = amount;
    }
  }
  for (const [key, value] of Object.entries(input.data)) {
    const m = MINOR_KEY.exec(key);
    const amount = m ? formattedAmount(value, input.data.currency) : null;
    if (m && amount !== null) vars[m[1]!] = amount;
  }
  const name = input.customerName?.trim() || '';
  vars.brandName = input.brandName;
  vars.customerName = name;
  vars.email = input.email;
  vars.greeting = name ? `Hello ${name},` : 'Hello,';
  return vars;
}
