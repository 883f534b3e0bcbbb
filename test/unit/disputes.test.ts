/**
 * domain/disputes.ts: the automatic credit below the handling cost and within the abuse caps,
 * the evidence rules, and what an operator's decision may credit.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  autoCreditPeriodKey,
  chargebackLedgerEntries,
  decideAutomatically,
  decideByEvidence,
  decisionCreditMinor,
  decisionProblem,
  DisputeEvidence,
  disputeFigures,
  DisputeFigures,
  lineDisputableMinor,
} from '../../domain/disputes';
import { DEFAULT_POLICIES, POLICY_SCHEMAS } from '../../domain/policies';

const figures: DisputeFigures = { handlingCostMinor: 50, maxAutoCreditsMinor: 500, maxAutoCreditCount: 3 };
const none = { creditedMinor: 0, count: 0 };

function evidence(over: Partial<DisputeEvidence> = {}): DisputeEvidence {
  return {
    line: { position: 2, kind: 'usage', description: 'api_calls usage', metric: 'api_calls', quantity: '1100', amountMinor: 4, periodStart: '2026-10-01T00:00:00.000Z', periodEnd: '2026-11-01T00:00:00.000Z' },
    usage: { events: 2, quantity: '1100', firstAt: '2026-10-11T00:00:00.000Z', lastAt: '2026-10-12T00:00:00.000Z' },
    deliveries: { sent: 1, failed: 0, pending: 0, templates: ['invoice-ready'] },
    payments: { succeeded: 0, declined: 0, paidMinor: 0, gatewayPaymentIds: [] },
    gatheredAt: '2026-11-02T00:00:00.000Z',
    ...over,
  };
}

describe('dispute policy (domain/disputes)', () => {
  describe('disputeFigures', () => {
    it("reads the default policy's amounts in the dispute's minor units", () => {
      assert.deepEqual(disputeFigures(DEFAULT_POLICIES.disputes, 'USD'), { handlingCostMinor: 50, maxAutoCreditsMinor: 500, maxAutoCreditCount: 10 });
      assert.deepEqual(disputeFigures(DEFAULT_POLICIES.disputes, 'JPY'), { handlingCostMinor: 1, maxAutoCreditsMinor: 5, maxAutoCreditCount: 10 });
    });

    it('keeps stored policies without a count cap valid: the default count applies', () => {
      const stored = { handlingCost: '0.30', maxAutoCreditsPerPeriod: '2.00', operatorDecisionDeadline: 'P3D', defaultDecision: 'reject' };
      assert.equal(POLICY_SCHEMAS.disputes.parse(stored).maxAutoCreditCountPerPeriod, 10);
      assert.equal(POLICY_SCHEMAS.disputes.safeParse({ ...stored, maxAutoCreditCountPerPeriod: -1 }).success, false);
    });
  });

  describe('decideAutomatically', () => {
    it('credits a 0.04 dispute at once when handling it costs 0.50', () => {
      assert.deepEqual(decideAutomatically(4, figures, none), { action: 'auto_credit' });
    });

    it('sends a dispute at or above the handling cost to review', () => {
      assert.deepEqual(decideAutomatically(50, figures, none), { action: 'review', reason: 'above_handling_cost' });
      assert.deepEqual(decideAutomatically(100_000, figures, none), { action: 'review', reason: 'above_handling_cost' });
    });

    it('escalates the n-th micro-dispute once the count cap is reached', () => {
      assert.deepEqual(decideAutomatically(4, figures, { creditedMinor: 12, count: 2 }), { action: 'auto_credit' });
      assert.deepEqual(decideAutomatically(4, figures, { creditedMinor: 12, count: 3 }), { action: 'review', reason: 'auto_credit_count_cap' });
    });

    it('escalates a micro-dispute that would take the period past the amount cap', () => {
      assert.deepEqual(decideAutomatically(49, { ...figures, maxAutoCreditCount: 100 }, { creditedMinor: 452, count: 10 }), {
        action: 'review',
        reason: 'auto_credit_amount_cap',
      });
      assert.deepEqual(decideAutomatically(48, { ...figures, maxAutoCreditCount: 100 }, { creditedMinor: 452, count: 10 }), { action: 'auto_credit' });
    });

    it('refuses amounts that are not positive whole minor units', () => {
      for (const bad of [0, -4, 0.5, Number.NaN]) assert.throws(() => decideAutomatically(bad, figures, none), RangeError);
    });

    it('never lets a sequence of automatic credits exceed either cap in a period', () => {
      fc.assert(
        fc.property(
          fc.record({ handlingCostMinor: fc.integer({ min: 1, max: 1000 }), maxAutoCreditsMinor: fc.integer({ min: 0, max: 5000 }), maxAutoCreditCount: fc.integer({ min: 0, max: 20 }) }),
          fc.array(fc.integer({ min: 1, max: 2000 }), { maxLength: 60 }),
          (f, amounts) => {
            const usage = { creditedMinor: 0, count: 0 };
            for (const amount of amounts) {
              const decision = decideAutomatically(amount, f, usage);
              if (decision.action === 'auto_credit') {
                assert.ok(amount < f.handlingCostMinor);
                usage.creditedMinor += amount;
                usage.count += 1;
              } else if (amount < f.handlingCostMinor) {
                assert.ok(usage.count + 1 > f.maxAutoCreditCount || usage.creditedMinor + amount > f.maxAutoCreditsMinor);
              }
            }
            assert.ok(usage.creditedMinor <= f.maxAutoCreditsMinor);
            assert.ok(usage.count <= f.maxAutoCreditCount);
          },
        ),
      );
    });
  });

  describe('lineDisputableMinor', () => {
    it("adds the line's share of tax on a tax-exclusive invoice, and nothing when prices include it", () => {
      // 10.00 fee + 0.04 usage, 19 % tax on 10.04 = 1.91 (total 11.95).
      const exclusive = { totalMinor: 1195, taxMinor: 191, taxInclusive: false };
      assert.equal(lineDisputableMinor(4, exclusive), 5);
      assert.equal(lineDisputableMinor(1000, exclusive), 1190);
      assert.equal(lineDisputableMinor(1000, { totalMinor: 1004, taxMinor: 160, taxInclusive: true }), 1000);
      assert.equal(lineDisputableMinor(1000, { totalMinor: 1004, taxMinor: 0, taxInclusive: false }), 1000);
      assert.equal(lineDisputableMinor(-100, exclusive), 0);
    });

    it('never lets the lines of an invoice together claim more than a rounding unit each above its total', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 1_000_000 }), { minLength: 1, maxLength: 10 }), fc.integer({ min: 0, max: 2500 }), (lines, basisPoints) => {
          const net = lines.reduce((a, b) => a + b, 0);
          fc.pre(net > 0);
          const tax = Math.round((net * basisPoints) / 10_000);
          const invoice = { totalMinor: net + tax, taxMinor: tax, taxInclusive: false };
          const claimed = lines.reduce((sum, l) => sum + lineDisputableMinor(l, invoice), 0);
          assert.ok(Math.abs(claimed - invoice.totalMinor) <= lines.length);
        }),
      );
    });
  });

  it('books a chargeback as contra revenue against gateway clearing, and its reversal the other way', () => {
    assert.deepEqual(chargebackLedgerEntries(1004, 'taken'), [
      { account: 'revenue_chargebacks', amountMinor: 1004 },
      { account: 'gateway_clearing', amountMinor: -1004 },
    ]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e12 }), (amount) => {
        const taken = chargebackLedgerEntries(amount, 'taken');
        const returned = chargebackLedgerEntries(amount, 'returned');
        assert.equal(taken.reduce((s, e) => s + e.amountMinor, 0), 0);
        assert.deepEqual(returned.map((e) => e.amountMinor), taken.map((e) => -e.amountMinor));
      }),
    );
    assert.throws(() => chargebackLedgerEntries(0, 'taken'), RangeError);
  });

  it('counts the cap per billing period', () => {
    assert.equal(autoCreditPeriodKey({ number: 3, start: '2026-12-01T00:00:00.000Z' }), 'period:3:2026-12-01T00:00:00.000Z');
    assert.equal(autoCreditPeriodKey(null), 'period:none');
  });

  describe('decideByEvidence', () => {
    it('credits a usage line with no usage event behind it', () => {
      assert.deepEqual(decideByEvidence(evidence({ usage: { events: 0, quantity: '0', firstAt: null, lastAt: null } })), { action: 'credit', rule: 'no_usage_behind_line' });
    });

    it('escalates delivered usage, a recurring fee, a whole invoice, and a failed delivery', () => {
      assert.equal(decideByEvidence(evidence()).action, 'escalate');
      assert.deepEqual(decideByEvidence(evidence()), { action: 'escalate', rule: 'usage_delivered' });
      const fee = evidence({ line: { ...evidence().line!, kind: 'recurring', metric: null, quantity: null }, usage: null });
      assert.deepEqual(decideByEvidence(fee), { action: 'escalate', rule: 'not_a_usage_line' });
      assert.deepEqual(decideByEvidence(evidence({ line: null, usage: null })), { action: 'escalate', rule: 'whole_invoice' });
      assert.deepEqual(decideByEvidence(evidence({ deliveries: { sent: 0, failed: 1, pending: 0, templates: ['invoice-ready'] } })), {
        action: 'escalate',
        rule: 'delivery_failed',
      });
    });
  });

  describe('operator decisions', () => {
    it('accepts all, part, or nothing of the disputed amount', () => {
      assert.equal(decisionProblem({ decision: 'accept' }, 1000), undefined);
      assert.equal(decisionProblem({ decision: 'accept', amountMinor: 1000 }, 1000), undefined);
      assert.equal(decisionProblem({ decision: 'reject' }, 1000), undefined);
      assert.equal(decisionCreditMinor({ decision: 'accept' }, 1000), 1000);
      assert.equal(decisionCreditMinor({ decision: 'accept', amountMinor: 250 }, 1000), 250);
      assert.equal(decisionCreditMinor({ decision: 'reject' }, 1000), 0);
    });

    it('refuses more than was disputed, a non-positive amount, and an amount with a rejection', () => {
      assert.equal(decisionProblem({ decision: 'accept', amountMinor: 1001 }, 1000)?.type, 'DECISION_EXCEEDS_DISPUTE');
      assert.equal(decisionProblem({ decision: 'accept', amountMinor: 0 }, 1000)?.type, 'INVALID_DECISION');
      assert.equal(decisionProblem({ decision: 'accept', amountMinor: 2.5 }, 1000)?.type, 'INVALID_DECISION');
      assert.equal(decisionProblem({ decision: 'reject', amountMinor: 5 }, 1000)?.type, 'INVALID_DECISION');
      assert.equal(decisionProblem({ decision: 'maybe' } as never, 1000)?.type, 'INVALID_DECISION');
    });

    it('never credits more than was disputed', () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 1e9 }), fc.option(fc.integer({ min: -10, max: 2e9 }), { nil: undefined }), (disputed, amountMinor) => {
          const decision = { decision: 'accept' as const, ...(amountMinor === undefined ? {} : { amountMinor }) };
          if (decisionProblem(decision, disputed)) return;
          const credit = decisionCreditMinor(decision, disputed);
          assert.ok(credit > 0 && credit <= disputed);
        }),
      );
    });
  });
});
