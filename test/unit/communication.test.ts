/**
 * domain/communication.ts: quiet hours on the customer's wall clock (wrapping midnight, across
 * daylight-saving jumps), time zone validation, opt-out rules and template rendering; and the
 * template library of presentment/templates.ts rendered with the data the workflows send.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  isOptedOut,
  isQuietTime,
  quietHoursApply,
  isValidTimeZone,
  mayOptOut,
  quietHoursEnd,
  renderMessage,
  renderTemplate,
  templatePlaceholders,
  TemplateSyntaxError,
} from '../../domain/communication';
import { BUILT_IN_TEMPLATES, messageVars, resolveTemplate, templateProblems } from '../../presentment/templates';

const MINUTE = 60_000;
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'Pacific/Chatham', 'America/Sao_Paulo'];
const clockArb = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
// 2020–2030: many daylight-saving transitions in each zone above.
const instantArb = fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }).map((ms) => new Date(ms));

const at = (iso: string) => new Date(iso);

describe('domain/communication', () => {
  describe('quiet hours', function () {
    // Thousands of time zone conversions: slow on a busy machine, not wrong.
    this.timeout(20_000);
    const night = { start: '21:00', end: '08:00' };

    it('sends at once outside quiet hours', () => {
      const noon = at('2026-11-25T12:00:00Z');
      assert.equal(quietHoursEnd(noon, 'UTC', night).toISOString(), noon.toISOString());
      assert.equal(quietHoursEnd(noon, 'UTC', null).toISOString(), noon.toISOString());
    });

    it('waits until the end of a window that wraps midnight, on the local wall clock', () => {
      // 23:30 in Berlin (UTC+1 in November) is 22:30Z; 08:00 local is 07:00Z the next day.
      assert.equal(quietHoursEnd(at('2026-11-25T22:30:00Z'), 'Europe/Berlin', night).toISOString(), '2026-11-26T07:00:00.000Z');
      // 03:15 local, after midnight: the same morning.
      assert.equal(quietHoursEnd(at('2026-11-26T02:15:00Z'), 'Europe/Berlin', night).toISOString(), '2026-11-26T07:00:00.000Z');
      // 21:00 local is inside, 08:00 local is outside: the window is [start, end).
      assert.equal(isQuietTime(at('2026-11-25T20:00:00Z'), 'Europe/Berlin', night), true);
      assert.equal(isQuietTime(at('2026-11-26T07:00:00Z'), 'Europe/Berlin', night), false);
    });

    it('handles a window within one day', () => {
      const lunch = { start: '12:00', end: '13:30' };
      assert.equal(quietHoursEnd(at('2026-11-25T12:10:00Z'), 'UTC', lunch).toISOString(), '2026-11-25T13:30:00.000Z');
      assert.equal(isQuietTime(at('2026-11-25T11:59:59Z'), 'UTC', lunch), false);
    });

    it('holds back what can wait, never transactional messages', () => {
      assert.equal(quietHoursApply('transactional'), false);
      for (const c of ['usage', 'nurture', 'upgrade_offers', 'marketing'] as const) assert.equal(quietHoursApply(c), true, c);
    });

    it('treats equal start and end as no quiet hours', () => {
      assert.equal(isQuietTime(at('2026-11-25T12:00:00Z'), 'UTC', { start: '10:00', end: '10:00' }), false);
    });

    it('counts real time across a daylight-saving change', () => {
      // Berlin leaves summer time at 01:00Z on 25 October 2026: 22:00 CEST (20:00Z) to 08:00 CET (07:00Z) is 11 hours.
      assert.equal(quietHoursEnd(at('2026-10-24T20:00:00Z'), 'Europe/Berlin', { start: '21:00', end: '08:00' }).toISOString(), '2026-10-25T07:00:00.000Z');
      // New York springs forward at 07:00Z on 8 March 2026: 08:00 EDT is 12:00Z.
      assert.equal(quietHoursEnd(at('2026-03-08T03:00:00Z'), 'America/New_York', { start: '21:00', end: '08:00' }).toISOString(), '2026-03-08T12:00:00.000Z');
    });

    it('ends at the jump when a daylight-saving change skips the end time', () => {
      // Berlin springs forward at 01:00Z on 29 March 2026 (02:00 CET becomes 03:00 CEST); 02:30 never happens.
      assert.equal(quietHoursEnd(at('2026-03-28T23:00:00Z'), 'Europe/Berlin', { start: '23:00', end: '02:30' }).toISOString(), '2026-03-29T01:00:00.000Z');
    });

    it('property: the result is never earlier, never quiet, and everything before it is quiet', () => {
      fc.assert(
        fc.property(instantArb, fc.constantFrom(...ZONES), clockArb, clockArb, fc.integer({ min: 0, max: 999 }), (instant, zone, start, end, probe) => {
          const quiet = { start, end };
          const sendAt = quietHoursEnd(instant, zone, quiet);
          assert.ok(sendAt.getTime() >= instant.getTime());
          assert.equal(isQuietTime(sendAt, zone, quiet), false);
          if (sendAt.getTime() > instant.getTime()) {
            assert.equal(isQuietTime(instant, zone, quiet), true);
            assert.ok(sendAt.getTime() - instant.getTime() <= 25 * 60 * MINUTE);
            // A point in between (chosen by the probe) is still quiet.
            const between = instant.getTime() + Math.floor(((sendAt.getTime() - instant.getTime()) * probe) / 1000);
            assert.equal(isQuietTime(new Date(between), zone, quiet), true, `${new Date(between).toISOString()} in ${zone} should be quiet`);
          }
        }),
        { numRuns: 2000 },
      );
    });
    it('property: the same holds around daylight-saving changes', () => {
      const changes: Array<[string, string]> = [
        ['Europe/Berlin', '2026-03-29T01:00:00Z'],
        ['Europe/Berlin', '2026-10-25T01:00:00Z'],
        ['America/New_York', '2026-03-08T07:00:00Z'],
        ['America/New_York', '2026-11-01T06:00:00Z'],
        ['Australia/Lord_Howe', '2026-04-04T15:00:00Z'],
        ['Australia/Lord_Howe', '2026-10-03T15:30:00Z'],
      ];
      fc.assert(
        fc.property(fc.constantFrom(...changes), fc.integer({ min: -30 * 60, max: 30 * 60 }), clockArb, clockArb, ([zone, change], minutes, start, end) => {
          const instant = new Date(Date.parse(change) + minutes * MINUTE);
          const quiet = { start, end };
          const sendAt = quietHoursEnd(instant, zone, quiet);
          assert.ok(sendAt.getTime() >= instant.getTime());
          assert.equal(isQuietTime(sendAt, zone, quiet), false);
          for (let t = instant.getTime(); t < sendAt.getTime(); t += 15 * MINUTE) assert.equal(isQuietTime(new Date(t), zone, quiet), true);
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('time zones', () => {
    it('accepts IANA names and rejects anything else', () => {
      for (const z of ['UTC', 'Europe/Berlin', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5']) assert.equal(isValidTimeZone(z), true, z);
      for (const z of ['', 'Mars/Olympus', '+01:00', 'Europe/Berlin; DROP', 'europe/../berlin', 'x'.repeat(100)]) assert.equal(isValidTimeZone(z), false, z);
    });
  });

  describe('opt-out', () => {
    it('never lets transactional messages be opted out of, and only categories the brand allows', () => {
      assert.equal(mayOptOut('transactional', ['transactional', 'marketing'] as string[]), false);
      assert.equal(mayOptOut('marketing', ['marketing']), true);
      assert.equal(mayOptOut('usage', ['marketing']), false);
      assert.equal(isOptedOut('marketing', ['marketing'], ['marketing']), true);
      assert.equal(isOptedOut('transactional', ['transactional'], ['transactional']), false);
      assert.equal(isOptedOut('usage', ['usage'], ['marketing']), false);
    });
  });

  describe('templates', () => {
    it('inserts values, escaping them in HTML only', () => {
      const out = renderMessage(
        { subject: 'Hi {{name}}', text: 'Dear {{name}},\nthanks', html: '<p>Dear <b>{{name}}</b></p>' },
        { name: 'Ada <script>&' },
      );
      assert.equal(out.subject, 'Hi Ada <script>&');
      assert.equal(out.text, 'Dear Ada <script>&,\nthanks');
      assert.equal(out.html, '<p>Dear <b>Ada &lt;script&gt;&amp;</b></p>');
    });

    it('keeps subjects on one line', () => {
      assert.equal(renderMessage({ subject: 'Plan {{plan}}', text: '', html: '' }, { plan: 'Pro\r\nBcc: x@example.com' }).subject, 'Plan Pro Bcc: x@example.com');
    });

    it('renders sections only when their value is present, inverted sections only when absent', () => {
      const t = '{{#plan}}Plan: {{plan}}.{{/plan}}{{^plan}}No plan.{{/plan}}';
      assert.equal(renderTemplate(t, { plan: 'Pro' }), 'Plan: Pro.');
      assert.equal(renderTemplate(t, {}), 'No plan.');
      assert.equal(renderTemplate(t, { plan: '' }), 'No plan.');
    });

    it('renders a missing value as nothing', () => {
      assert.equal(renderTemplate('[{{ missing }}]', {}), '[]');
    });

    it('lists placeholders and rejects malformed ones', () => {
      assert.deepEqual(templatePlaceholders('{{a}} {{#b}}{{c}}{{/b}}').sort(), ['a', 'b', 'c']);
      for (const bad of ['{{#a}}open', '{{/a}}', '{{#a}}{{/b}}', '{{ not valid }}', '{{a', '{{}}']) {
        assert.throws(() => templatePlaceholders(bad), TemplateSyntaxError, bad);
      }
    });

    it('property: HTML output never contains a tag from the data', () => {
      fc.assert(
        fc.property(fc.string(), (value) => {
          const out = renderMessage({ subject: '{{v}}', text: '{{v}}', html: '<p>{{v}}</p>' }, { v: value });
          assert.equal(out.text, value);
          assert.doesNotMatch(out.html.slice(3, -4), /[<>"']/);
        }),
      );
    });
  });

  describe('template library', () => {
    // Every template the customer workflow sends, with the data it sends.
    const SENT: Array<[string, Record<string, unknown>]> = [
      ['welcome', { plan: 'Pro' }],
      ['nurture-welcome', {}],
      ['nurture-reminder', {}],
      ['usage-allowance-80', { metric: 'api_calls', threshold: 80, quantity: 800, included: 1000 }],
      ['usage-allowance-used', { metric: 'api_calls', threshold: 100, quantity: 1000, included: 1000 }],
      ['invoice-ready', { number: 'ACME-000001', amountDue: 'USD 49.00', dueDate: '9 December 2026', viewUrl: 'https://billing.example/x?a=1&b=2' }],
      ['payment-failed', { declineCode: 'insufficient_funds', message: 'Insufficient funds' }],
      ['payment-failed-update-method', { declineCode: 'card_declined', message: 'Card declined' }],
      ['payment-retry-failed', { attempt: 2, declineCode: 'card_declined', finalRetry: true }],
      ['payment-recovered', {}],
      ['service-suspended', {}],
      ['service-restored', {}],
      ['account-written-off', {}],
      ['upgrade-offer', { planCode: 'scale', planName: 'Scale', reason: 'cheaper_for_customer', currentCostMinor: 12000, suggestedCostMinor: 9900, currentPlan: 'Pro', currency: 'USD', period: 3 }],
      ['plan-changed', { fromPlan: 'Basic', toPlan: 'Pro', prorationMinor: 1234, currency: 'USD' }],
      ['plan-change-scheduled', { fromPlan: 'Pro', toPlan: 'Basic', effectiveAt: '2026-12-01T00:00:00Z' }],
      ['subscription-cancelled', { plan: 'Pro', effectiveAt: '2026-12-01T00:00:00Z', finalInvoice: 'ACME-000009' }],
      ['cancellation-scheduled', { effectiveAt: '2026-12-01T00:00:00Z', plan: 'Pro' }],
      ['dispute-opened', { invoiceId: 'inv_1', amountMinor: 1250, currency: 'USD', reason: 'duplicate' }],
      ['dispute-escalated', { disputed: { minor: 1250, currency: 'USD', amount: '12.50' }, decisionDeadline: '2026-12-02T10:00:00.000Z' }],
      ['dispute-resolved', { outcome: 'credited', resolution: 'auto', disputed: { minor: 1250, currency: 'USD', amount: '12.50' }, credited: { minor: 1250, currency: 'USD', amount: '12.50' } }],
    ];

    it('has subject, text and HTML for every message the lifecycle sends, and they render cleanly', () => {
      for (const [name, data] of SENT) {
        const source = BUILT_IN_TEMPLATES.get(name);
        assert.ok(source, `library has ${name}`);
        assert.deepEqual(templateProblems(source), [], name);
        const out = renderMessage(source, messageVars({ brandName: 'Acme & Co', customerName: 'Ada', email: 'ada@example.com', data }));
        for (const part of [out.subject, out.text, out.html]) {
          assert.ok(part.trim().length > 0, name);
          assert.doesNotMatch(part, /\{\{|\}\}/, name);
        }
        assert.match(out.text, /^Hello Ada,/, name);
        assert.match(out.html, /Acme &amp; Co/, name);
      }
    });

    it('formats amounts from minor units and dates from instants', () => {
      const plan = renderMessage(BUILT_IN_TEMPLATES.get('plan-changed')!, messageVars({ brandName: 'Acme', customerName: null, email: 'x@example.com', data: SENT[14]![1] }));
      assert.match(plan.text, /^Hello,\n/);
      assert.match(plan.text, /from Basic to Pro\.[\s\S]*USD 12\.34/);
      const scheduled = renderMessage(BUILT_IN_TEMPLATES.get('plan-change-scheduled')!, messageVars({ brandName: 'Acme', customerName: null, email: 'x@example.com', data: SENT[15]![1] }));
      assert.match(scheduled.text, /to Basic on 1 December 2026\./);
      const rejected = renderMessage(
        BUILT_IN_TEMPLATES.get('dispute-resolved')!,
        messageVars({ brandName: 'Acme', customerName: null, email: 'x@example.com', data: { outcome: 'rejected', disputed: { minor: 1250, currency: 'USD' }, credited: { minor: 0, currency: 'USD' } } }),
      );
      assert.match(rejected.text, /Your dispute over USD 12\.50 has been resolved\.\s+We reviewed it and found the charge correct, so no credit was issued\./);
      const escalated = renderMessage(BUILT_IN_TEMPLATES.get('dispute-escalated')!, messageVars({ brandName: 'Acme', customerName: null, email: 'x@example.com', data: SENT[19]![1] }));
      assert.match(escalated.text, /by 2 December 2026\./);
      const offer = renderMessage(BUILT_IN_TEMPLATES.get('upgrade-offer')!, messageVars({ brandName: 'Acme', customerName: null, email: 'x@example.com', data: SENT[13]![1] }));
      assert.equal(offer.subject, 'The Scale plan may save you money');
      assert.match(offer.text, /cost USD 120\.00; on Scale it would have cost USD 99\.00\./);
    });

    it("falls back to a generic message of the category for a name it does not know; the brand's own version wins", () => {
      const generic = resolveTemplate('nurture-day-9', 'nurture', null);
      assert.equal(generic.origin, 'generic');
      assert.match(renderMessage(generic.source, messageVars({ brandName: 'Acme', customerName: null, email: 'x@example.com', data: {} })).subject, /Acme/);
      const own = { subject: 'Hi', text: 'Hi', html: '<p>Hi</p>' };
      assert.deepEqual(resolveTemplate('welcome', 'transactional', own), { source: own, origin: 'brand' });
      assert.equal(resolveTemplate('welcome', 'transactional', null).origin, 'library');
    });
  });
});
