import assert from 'node:assert/strict';
import { billingPeriodProblem, compareDecimal, minimumLengthMs, PlanInput, planDraft, PlanInputError, UsageComponent } from '../../domain/catalog';
import { DEFAULT_POLICIES, POLICY_KINDS, POLICY_SCHEMAS, policyProblems } from '../../domain/policies';

/** The issue paths of a failed parse, joined with dots, sorted. */
function issuePaths(result: { success: boolean; error?: { issues: Array<{ path: PropertyKey[] }> } }): string[] {
  assert.equal(result.success, false, 'expected the input to be rejected');
  return result.error!.issues.map((i) => i.path.map(String).join('.')).sort();
}

describe('catalog: usage components', () => {
  it('reports a malformed charge bound as an issue instead of throwing (found by the API fuzzer)', () => {
    const result = UsageComponent.safeParse({ metric: 'calls', model: 'per_unit', unitPrice: '0.01', minimumCharge: '12,34', maximumCharge: '10' });
    assert.equal(result.success, false);
    assert.ok(result.error?.issues.some((i) => i.path.join('.') === 'minimumCharge'));
  });

  it('accepts each pricing model with the fields it needs, and defaults the included quantity to 0', () => {
    const perUnit = UsageComponent.parse({ metric: 'api_calls', model: 'per_unit', unitPrice: '0.0004' });
    assert.equal(perUnit.includedQuantity, 0);
    UsageComponent.parse({ metric: 'gb', model: 'graduated', tiers: [{ upTo: 10, unitPrice: '1' }, { upTo: null, unitPrice: '0.5', flatFee: '2.00' }] });
    UsageComponent.parse({ metric: 'gb', model: 'volume', tiers: [{ upTo: null, unitPrice: '0.1' }] });
    UsageComponent.parse({ metric: 'sms', model: 'package', packageSize: 100, packagePrice: '5.00', includedQuantity: 100 });
  });

  it('requires the fields of the model', () => {
    assert.deepEqual(issuePaths(UsageComponent.safeParse({ metric: 'm', model: 'per_unit' })), ['unitPrice']);
    assert.deepEqual(issuePaths(UsageComponent.safeParse({ metric: 'm', model: 'graduated' })), ['tiers']);
    assert.deepEqual(issuePaths(UsageComponent.safeParse({ metric: 'm', model: 'package', packageSize: 10 })), ['packagePrice']);
  });

  it('rejects fields the model does not use', () => {
    const r = UsageComponent.safeParse({ metric: 'm', model: 'per_unit', unitPrice: '1', tiers: [{ upTo: null, unitPrice: '1' }], packageSize: 5 });
    assert.deepEqual(issuePaths(r), ['packageSize', 'tiers']);
  });

  it('needs tiers that ascend and end unbounded', () => {
    const unboundedFirst = UsageComponent.safeParse({ metric: 'm', model: 'graduated', tiers: [{ upTo: null, unitPrice: '1' }, { upTo: 10, unitPrice: '1' }] });
    assert.deepEqual(issuePaths(unboundedFirst), ['tiers.0.upTo', 'tiers.1.upTo']);
    const descending = UsageComponent.safeParse({
      metric: 'm',
      model: 'volume',
      tiers: [{ upTo: 100, unitPrice: '1' }, { upTo: 50, unitPrice: '1' }, { upTo: null, unitPrice: '1' }],
    });
    assert.deepEqual(issuePaths(descending), ['tiers.1.upTo']);
    const boundedLast = UsageComponent.safeParse({ metric: 'm', model: 'volume', tiers: [{ upTo: 100, unitPrice: '1' }] });
    assert.deepEqual(issuePaths(boundedLast), ['tiers.0.upTo']);
    assert.deepEqual(issuePaths(UsageComponent.safeParse({ metric: 'm', model: 'volume', tiers: [] })), ['tiers']);
  });

  it('rejects a maximum charge below the minimum charge, comparing decimals exactly', () => {
    const r = UsageComponent.safeParse({ metric: 'm', model: 'per_unit', unitPrice: '1', minimumCharge: '10.5', maximumCharge: '10.49' });
    assert.deepEqual(issuePaths(r), ['maximumCharge']);
    UsageComponent.parse({ metric: 'm', model: 'per_unit', unitPrice: '1', minimumCharge: '10.50', maximumCharge: '10.5' });
    assert.equal(compareDecimal('0.0004', '0.0003'), 1);
    assert.equal(compareDecimal('2', '10'), -1);
    assert.equal(compareDecimal('1.10', '1.1'), 0);
  });

  it('rejects prices that are not non-negative decimal strings, and unknown fields', () => {
    assert.deepEqual(issuePaths(UsageComponent.safeParse({ metric: 'm', model: 'per_unit', unitPrice: '-1' })), ['unitPrice']);
    assert.deepEqual(issuePaths(UsageComponent.safeParse({ metric: 'm', model: 'per_unit', unitPrice: 0.5 })), ['unitPrice']);
    const extra = UsageComponent.safeParse({ metric: 'm', model: 'per_unit', unitPrice: '1', colour: 'red' });
    assert.equal(extra.success, false);
    assert.equal(extra.error!.issues[0]!.code, 'unrecognized_keys');
  });
});

describe('catalog: plan input', () => {
  const base = { code: 'pro', name: 'Pro', recurringFee: '29.00', billingPeriod: 'P1M' };
  const usd = { currency: 'USD', mode: 'sandbox' as const };

  it('fills defaults and converts amounts to minor units of the brand currency', () => {
    const draft = planDraft(PlanInput.parse(base), usd);
    assert.deepEqual(draft, {
      code: 'pro',
      name: 'Pro',
      currency: 'USD',
      recurringFeeMinor: 2900,
      costToServeMinor: 0,
      billingPeriod: 'P1M',
      entitlements: { features: [], quotas: {} },
      usageComponents: [],
    });
    assert.equal(planDraft(PlanInput.parse({ ...base, recurringFee: '500' }), { currency: 'JPY', mode: 'live' }).recurringFeeMinor, 500);
    assert.equal(planDraft(PlanInput.parse({ ...base, recurringFee: '1.234' }), { currency: 'KWD', mode: 'live' }).recurringFeeMinor, 1234);
  });

  it('rejects more decimals than the currency has, naming each field, instead of rounding', () => {
    const input = PlanInput.parse({ ...base, recurringFee: '29.001', costToServe: '1.5', billingPeriod: 'PT30S' });
    assert.throws(
      () => planDraft(input, usd),
      (e) => e instanceof PlanInputError && e.issues.map((i) => i.field).join() === 'recurringFee,billingPeriod',
    );
    assert.throws(
      () => planDraft(PlanInput.parse({ ...base, recurringFee: '5.5' }), { currency: 'JPY', mode: 'sandbox' }),
      (e) => e instanceof PlanInputError && /at most 0 decimal places/.test(e.issues[0]!.message),
    );
  });

  it('rejects the same metric priced twice and duplicate features', () => {
    const r = PlanInput.safeParse({
      ...base,
      entitlements: { features: ['api', 'sso', 'api'] },
      usage: [
        { metric: 'api_calls', model: 'per_unit', unitPrice: '0.001' },
        { metric: 'api_calls', model: 'package', packageSize: 10, packagePrice: '1' },
      ],
    });
    assert.deepEqual(issuePaths(r), ['entitlements.features.2', 'usage.1.metric']);
  });

  it('rejects bad codes, negative fees, numbers for amounts and unknown fields', () => {
    const r = PlanInput.safeParse({ ...base, code: 'Pro Plan', recurringFee: '-1.00', costToServe: 4, colour: 'red' });
    assert.deepEqual(issuePaths(r), ['', 'code', 'costToServe', 'recurringFee']);
  });
});

describe('catalog: billing periods', () => {
  it('measures durations by their shortest possible length', () => {
    assert.equal(minimumLengthMs('PT1M'), 60_000);
    assert.equal(minimumLengthMs('P1D'), 86_400_000);
    assert.equal(minimumLengthMs('P1M'), 28 * 86_400_000);
    assert.equal(minimumLengthMs('P1Y'), 365 * 86_400_000);
  });

  it('lets sandbox brands bill every minute and live brands at most daily', () => {
    assert.equal(billingPeriodProblem('PT1M', 'sandbox'), undefined);
    assert.equal(billingPeriodProblem('P1M', 'sandbox'), undefined);
    assert.match(billingPeriodProblem('PT30S', 'sandbox')!, /at least one minute/);
    assert.match(billingPeriodProblem('PT1M', 'live')!, /at least one day/);
    assert.match(billingPeriodProblem('PT1H', 'live')!, /at least one day/);
    assert.equal(billingPeriodProblem('PT24H', 'live'), undefined);
    assert.equal(billingPeriodProblem('P1D', 'live'), undefined);
    assert.equal(billingPeriodProblem('P1Y', 'live'), undefined);
  });

  it('rejects malformed, zero and overlong periods', () => {
    assert.match(billingPeriodProblem('P0D', 'sandbox')!, /zero-length/);
    assert.match(billingPeriodProblem('monthly', 'sandbox')!, /not an ISO-8601 duration/);
    assert.match(billingPeriodProblem('P1', 'live')!, /not an ISO-8601 duration/);
    assert.match(billingPeriodProblem('P6Y', 'live')!, /at most five years/);
  });
});

describe('policies: schemas and brand checks', () => {
  const sandbox = { mode: 'sandbox' as const, planCodes: new Set(['starter', 'pro']) };
  const live = { mode: 'live' as const, planCodes: new Set<string>() };

  it('accepts every default document, for sandbox and live brands alike', () => {
    for (const kind of POLICY_KINDS) {
      const document = POLICY_SCHEMAS[kind].parse(DEFAULT_POLICIES[kind]);
      assert.deepEqual(document, DEFAULT_POLICIES[kind]);
      assert.deepEqual(policyProblems(kind, document, live), [], kind);
    }
  });

  it('fills offer rule defaults and rejects duplicate rule ids and inverted volume ranges', () => {
    const ok = POLICY_SCHEMAS.offers.parse({ rules: [{ id: 'all', plan: 'starter' }] });
    assert.deepEqual(ok, { rules: [{ id: 'all', when: {}, plan: 'starter', discountPercent: 0 }], horizonPeriods: 12 });
    const bad = POLICY_SCHEMAS.offers.safeParse({
      rules: [
        { id: 'a', plan: 'starter', when: { minVolume: 10, maxVolume: 5 } },
        { id: 'a', plan: 'pro', discountPercent: 120, when: { country: ['de'] } },
      ],
    });
    assert.deepEqual(issuePaths(bad), ['rules.0.when.maxVolume', 'rules.1.discountPercent', 'rules.1.id', 'rules.1.when.country.0']);
  });

  it('rejects malformed durations and unknown fields in every kind', () => {
    assert.deepEqual(issuePaths(POLICY_SCHEMAS.acquisition.safeParse({ nurture: [{ after: '2 minutes', template: 'x' }], leadExpiresAfter: 'P30D' })), [
      'nurture.0.after',
    ]);
    assert.deepEqual(issuePaths(POLICY_SCHEMAS.dunning.safeParse({ retrySchedule: ['P1D', 'P0D'], gracePeriod: 'P7D', writeOffAfter: 'P30D' })), [
      'retrySchedule.1',
    ]);
    assert.deepEqual(issuePaths(POLICY_SCHEMAS.disputes.safeParse({ ...DEFAULT_POLICIES.disputes, handlingCost: '-1', defaultDecision: 'maybe' })), [
      'defaultDecision',
      'handlingCost',
    ]);
    assert.deepEqual(issuePaths(POLICY_SCHEMAS.communication.safeParse({ ...DEFAULT_POLICIES.communication, quietHours: { start: '25:00', end: '08:00' } })), [
      'quietHours.start',
    ]);
    assert.equal(POLICY_SCHEMAS.dunning.safeParse({ ...DEFAULT_POLICIES.dunning, retries: 3 }).success, false);
  });

  it('holds durations to the brand mode: minutes for sandbox brands, days for live brands', () => {
    const acquisition = { nurture: [{ after: 'PT2M', template: 'a' }, { after: 'PT30S', template: 'b' }], leadExpiresAfter: 'PT30M' };
    assert.deepEqual(
      policyProblems('acquisition', acquisition, sandbox).map((p) => p.field),
      ['nurture.1.after'],
    );
    assert.deepEqual(
      policyProblems('acquisition', acquisition, live).map((p) => p.field),
      ['nurture.0.after', 'nurture.1.after', 'leadExpiresAfter'],
    );
    const dunning = { retrySchedule: ['PT5M', 'P1D'], gracePeriod: 'PT23H', writeOffAfter: 'P30D' };
    assert.deepEqual(policyProblems('dunning', dunning, sandbox), []);
    assert.deepEqual(policyProblems('dunning', dunning, live).map((p) => p.field), ['retrySchedule.0', 'gracePeriod']);
    const disputes = { ...DEFAULT_POLICIES.disputes, operatorDecisionDeadline: 'PT10M' };
    assert.deepEqual(policyProblems('disputes', disputes, live).map((p) => p.field), ['operatorDecisionDeadline']);
    assert.match(policyProblems('disputes', disputes, live)[0]!.message, /at least one day/);
  });

  it('needs every offer rule to name a plan of the brand', () => {
    const offers = POLICY_SCHEMAS.offers.parse({ rules: [{ id: 'a', plan: 'pro' }, { id: 'b', plan: 'gold' }] });
    const problems = policyProblems('offers', offers, sandbox);
    assert.deepEqual(problems.map((p) => p.field), ['rules.1.plan']);
    assert.match(problems[0]!.message, /no plan "gold"/);
  });
});
