/**
 * domain/ids.ts: one workflow id per (brand, customer), with no collisions across brands.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BRAND_ID, CUSTOMER_ID, customerWorkflowId } from '../../domain/ids';

const brandArb = fc.stringMatching(BRAND_ID);
const customerArb = fc.stringMatching(CUSTOMER_ID);

/**
 * Ids drawn from a tiny alphabet of the characters that could blur the brand/customer boundary
 * (`-`, `.`, `_` and a couple of letters), so that near-collisions are common.
 */
const tinyBrandArb = fc
  .string({ unit: fc.constantFrom('a', 'b', '-'), minLength: 1, maxLength: 6 })
  .filter((s) => BRAND_ID.test(s));
const tinyCustomerArb = fc
  .string({ unit: fc.constantFrom('a', 'b', '-', '.', '_'), minLength: 1, maxLength: 6 })
  .filter((s) => CUSTOMER_ID.test(s));

function invalid(kind: 'brand' | 'customer') {
  return (err: unknown) => err instanceof RangeError && err.message.startsWith(`invalid ${kind} id`);
}

describe('domain/ids customerWorkflowId', () => {
  it('has the form customer-<brand>:<customer>', () => {
    assert.equal(customerWorkflowId('acme', 'cus_123'), 'customer-acme:cus_123');
    assert.equal(customerWorkflowId('my-brand-2', 'A.b-C_9'), 'customer-my-brand-2:A.b-C_9');
  });

  it('gives two brands using the same customer id different workflow ids', () => {
    assert.notEqual(customerWorkflowId('acme', '42'), customerWorkflowId('globex', '42'));
  });

  it('keeps hyphens on the right side of the separator (a / b-c vs a-b / c)', () => {
    assert.notEqual(customerWorkflowId('a', 'b-c'), customerWorkflowId('a-b', 'c'));
    assert.equal(customerWorkflowId('a', 'b-c'), 'customer-a:b-c');
    assert.equal(customerWorkflowId('a-b', 'c'), 'customer-a-b:c');
  });

  it('accepts the longest allowed ids (40-character brand, 64-character customer)', () => {
    const brand = `a${'b'.repeat(39)}`;
    const customer = `C${'d'.repeat(63)}`;
    assert.equal(customerWorkflowId(brand, customer), `customer-${brand}:${customer}`);
  });

  for (const customer of ['a:b', ':ab', 'ab:', 'a b', ' ab', 'ab ', 'a\tb', '']) {
    it(`rejects the customer id ${JSON.stringify(customer)}`, () => {
      assert.throws(() => customerWorkflowId('acme', customer), invalid('customer'));
    });
  }

  for (const customer of ['-abc', '.abc', '_abc', 'a/b', 'a#b', 'ü', `C${'d'.repeat(64)}`]) {
    it(`rejects the customer id ${JSON.stringify(customer)} (bad first character, symbol or too long)`, () => {
      assert.throws(() => customerWorkflowId('acme', customer), invalid('customer'));
    });
  }

  for (const brand of ['ac:me', 'ac me', 'Acme', '-acme', 'ac_me', 'ac.me', '', `a${'b'.repeat(40)}`]) {
    it(`rejects the brand id ${JSON.stringify(brand)}`, () => {
      assert.throws(() => customerWorkflowId(brand, 'c1'), invalid('brand'));
    });
  }

  it('quotes the offending id in the error', () => {
    assert.throws(() => customerWorkflowId('acme', 'x:y'), /"x:y"/);
  });

  it('rejects every customer id containing ":" or whitespace, whatever else it contains', () => {
    fc.assert(
      fc.property(customerArb, fc.constantFrom(':', ' ', '\t', '\n'), fc.nat(), (id, bad, at) => {
        const i = at % (id.length + 1);
        const tainted = id.slice(0, i) + bad + id.slice(i);
        assert.throws(() => customerWorkflowId('acme', tainted), invalid('customer'));
      }),
    );
  });

  it('decodes back: the text between "customer-" and the first ":" is the brand, the rest the customer', () => {
    fc.assert(
      fc.property(brandArb, customerArb, (brand, customer) => {
        const id = customerWorkflowId(brand, customer);
        assert.ok(id.startsWith('customer-'));
        const body = id.slice('customer-'.length);
        const sep = body.indexOf(':');
        assert.equal(body.slice(0, sep), brand);
        assert.equal(body.slice(sep + 1), customer);
      }),
    );
  });

  it('maps distinct (brand, customer) pairs to distinct workflow ids', () => {
    const pairArb = fc.oneof(fc.tuple(brandArb, customerArb), fc.tuple(tinyBrandArb, tinyCustomerArb));
    fc.assert(
      fc.property(
        fc.uniqueArray(pairArb, { minLength: 2, maxLength: 40, selector: ([b, c]) => `${b}\u0000${c}` }),
        (pairs) => {
          const ids = new Set(pairs.map(([b, c]) => customerWorkflowId(b, c)));
          assert.equal(ids.size, pairs.length);
        },
      ),
    );
  });
});
