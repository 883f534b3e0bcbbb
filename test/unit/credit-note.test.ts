/**
 * domain/credit-note.ts: what is still creditable, the proportional tax split (rounded half away
 * from zero on the running total), receivables versus customer credit, and the ledger entries.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { creditableMinor, CreditableInvoice, CreditNoteAmountError, creditNoteLedgerEntries, CreditSplit, splitCredit } from '../../domain/credit-note';
import { divRoundHalfAway } from '../../domain/invoice';

/** An invoice with 0 ≤ tax ≤ total, as invoiceTotals produces them. */
const invoiceArb = fc
  .integer({ min: 1, max: 1_000_000_000 })
  .chain((total) => fc.record({ totalMinor: fc.constant(total), taxMinor: fc.integer({ min: 0, max: total }) }));

/** Issues notes for `fractions` of what is left, then one for the full remainder. */
function creditInFull(inv: { totalMinor: number; taxMinor: number }, fractions: number[], stillDue = inv.totalMinor): CreditSplit[] {
  const state: CreditableInvoice = { ...inv, creditedMinor: 0, creditedTaxMinor: 0 };
  let due = stillDue;
  const notes: CreditSplit[] = [];
  const issue = (amount: number) => {
    const s = splitCredit(state, amount, due);
    state.creditedMinor += s.amountMinor;
    state.creditedTaxMinor += s.taxMinor;
    due -= s.receivablesMinor;
    notes.push(s);
  };
  for (const f of fractions) {
    const left = creditableMinor(state);
    const amount = Math.floor(left * f);
    if (amount >= 1 && amount < left) issue(amount);
  }
  if (creditableMinor(state) > 0) issue(creditableMinor(state));
  return notes;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('domain/credit-note', () => {
  it('credits tax in proportion, rounded half away from zero', () => {
    // USD 49.00 + 19 % = 58.31; crediting 10.00 of it credits round(9.31 × 10 / 58.31) = 1.60 of tax.
    const s = splitCredit({ totalMinor: 5831, taxMinor: 931, creditedMinor: 0, creditedTaxMinor: 0 }, 1000, 5831);
    assert.deepEqual(s, { amountMinor: 1000, netMinor: 840, taxMinor: 160, receivablesMinor: 1000, customerCreditMinor: 0 });
  });

  it('never lets several partial notes credit more tax than the invoice charged (rounding on the running total)', () => {
    // Rounded note by note, each of two 1-cent notes on a 2-cent invoice with 1 cent of tax
    // would credit round(0.5) = 1 cent of tax: 2 cents in all, on an invoice that charged 1.
    const inv = { totalMinor: 2, taxMinor: 1 };
    const notes = creditInFull(inv, [0.5]);
    assert.deepEqual(
      notes.map((n) => n.taxMinor),
      [1, 0],
    );
    assert.equal(sum(notes.map((n) => n.taxMinor)), 1);
  });

  it('property: tax + net = the credited amount, and the notes together never exceed the invoice', () => {
    fc.assert(
      fc.property(invoiceArb, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }), (inv, fractions) => {
        const notes = creditInFull(inv, fractions);
        let amount = 0;
        let tax = 0;
        for (const n of notes) {
          assert.equal(n.netMinor + n.taxMinor, n.amountMinor);
          assert.ok(n.amountMinor > 0 && n.taxMinor >= 0 && n.netMinor >= 0);
          amount += n.amountMinor;
          tax += n.taxMinor;
          assert.ok(amount <= inv.totalMinor, 'credited more than the invoice total');
          assert.ok(tax <= inv.taxMinor, 'credited more tax than the invoice charged');
          assert.ok(amount - tax <= inv.totalMinor - inv.taxMinor, 'credited more revenue than the invoice booked');
          // However the credit was cut into notes, the tax credited so far is the proportion of it.
          assert.equal(BigInt(tax), divRoundHalfAway(BigInt(inv.taxMinor) * BigInt(amount), BigInt(inv.totalMinor)));
        }
        // Credited in full: exactly the invoice's tax and net, to the minor unit.
        assert.equal(amount, inv.totalMinor);
        assert.equal(tax, inv.taxMinor);
      }),
    );
  });

  it('refuses an amount above what is still creditable, saying how much is', () => {
    const inv = { totalMinor: 4900, taxMinor: 0, creditedMinor: 1000, creditedTaxMinor: 0 };
    assert.equal(creditableMinor(inv), 3900);
    assert.throws(
      () => splitCredit(inv, 3901, 4900),
      (e: unknown) => e instanceof CreditNoteAmountError && e.creditableMinor === 3900,
    );
    assert.throws(() => splitCredit(inv, 0, 4900), CreditNoteAmountError);
    assert.throws(() => splitCredit({ ...inv, creditedMinor: 4900 }, 1, 4900), CreditNoteAmountError);
    assert.throws(() => splitCredit(inv, 1.5, 4900), RangeError);
  });

  it('takes the credit off what is still owed first, and returns the rest to the customer credit balance', () => {
    const inv = { totalMinor: 5831, taxMinor: 931, creditedMinor: 0, creditedTaxMinor: 0 };
    assert.deepEqual(
      [splitCredit(inv, 1000, 5831), splitCredit(inv, 1000, 400), splitCredit(inv, 1000, 0)].map((s) => [s.receivablesMinor, s.customerCreditMinor]),
      [
        [1000, 0],
        [400, 600],
        [0, 1000],
      ],
    );
  });

  it('property: the ledger entries balance and reverse revenue, tax, receivables and credit by the split', () => {
    fc.assert(
      fc.property(invoiceArb, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (inv, f, paid) => {
        const amount = Math.max(1, Math.floor(inv.totalMinor * f));
        const stillDue = Math.floor(inv.totalMinor * (1 - paid));
        const s = splitCredit({ ...inv, creditedMinor: 0, creditedTaxMinor: 0 }, amount, stillDue);
        const entries = creditNoteLedgerEntries(s);
        assert.equal(sum(entries.map((e) => e.amountMinor)), 0);
        const of = (account: string) => sum(entries.filter((e) => e.account === account).map((e) => e.amountMinor));
        assert.equal(of('revenue'), s.netMinor);
        assert.equal(of('tax_payable'), s.taxMinor);
        assert.equal(of('receivables'), 0 - Math.min(amount, stillDue));
        assert.equal(of('customer_credit'), Math.min(amount, stillDue) - amount);
        assert.ok(entries.every((e) => e.amountMinor !== 0));
      }),
    );
  });
});
