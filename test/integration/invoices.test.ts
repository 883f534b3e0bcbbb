import assert from 'node:assert/strict';
import { checkLedger, customerCreditMinor } from '../../data/ledger';
import { recordCharge } from '../../data/payments';
import { seedPlans } from '../support/fixtures';
import { uniqueId } from '../support/helpers';
import { eventually, Stack, startStack } from '../support/stack';

/**
 * Invoices, their presentment, tax rates and credit notes as a client app uses them: real HTTP,
 * the Temporal dev server with the real worker (which finalizes the opening invoice at
 * activation), PostgreSQL. After every test the ledger balances and receivables equal the
 * documents behind them.
 */
describe('invoices, tax rates and credit notes over HTTP (integration, dev server)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let a: { id: string; key: string };
  let other: { id: string; key: string };

  before(async function () {
    this.timeout(180_000);
    stack = await startStack();
    a = await stack.brand({ name: 'Acme Cloud' });
    other = await stack.brand();
    for (const brand of [a, other]) await seedPlans(stack.db, brand.id);
  });

  afterEach(async () => {
    const ledger = await checkLedger(stack.db);
    assert.deepEqual(ledger.unbalanced, [], 'every ledger transaction sums to zero');
    assert.deepEqual(ledger.receivablesMismatches, [], 'receivables equal the documents behind them');
  });

  after(async () => {
    await stack?.stop();
  });

  const get = (path: string, key: string | null = a.key) => stack.call('GET', path, { key });
  const fields = (res: { json: any }): string[] => [...new Set<string>((res.json?.error?.details ?? []).map((d: { field: string }) => d.field))].sort();
  const usd = (minor: number) => ({ amount: (minor / 100).toFixed(2), currency: 'USD', minor });

  /** Signs a customer up on "pro" (USD 49.00) and waits for the opening invoice. */
  async function signUp(brand: { id: string; key: string }) {
    const id = uniqueId('cus');
    const created = await stack.call('POST', '/v1/customers', {
      key: brand.key,
      // A declining card keeps the opening invoice open, so credit notes reduce receivables.
      body: { id, email: `${id}@example.com`, name: 'Ada Lovelace', plan: 'pro', paymentMethod: 'tok_hard_decline' },
    });
    assert.equal(created.status, 201, created.text);
    const list = await eventually(async () => {
      const res = await get(`/v1/customers/${id}/invoices`, brand.key);
      return res.status === 200 && res.json.data.length > 0 && res;
    }, 20_000);
    return { id, invoice: list.json.data[0] };
  }

  /** `idempotencyKey` null sends no Idempotency-Key header. */
  function creditNote(invoiceId: string, body: unknown, idempotencyKey: string | null = uniqueId('idem'), key = a.key) {
    return stack.call('POST', `/v1/invoices/${invoiceId}/credit-notes`, {
      key,
      body,
      headers: idempotencyKey === null ? {} : { 'idempotency-key': idempotencyKey },
    });
  }

  async function putTaxRates(brand: { key: string }, rates: unknown) {
    return stack.call('PUT', '/v1/tax-rates', { key: brand.key, body: { rates } });
  }

  describe('invoices and presentment', () => {
    let customer: { id: string; invoice: any };

    before(async function () {
      this.timeout(60_000);
      customer = await signUp(a);
    });

    it("lists the customer's opening invoice with exact totals and links", async () => {
      const res = await get(`/v1/customers/${customer.id}/invoices`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.data.length, 1);
      const [inv] = res.json.data;
      assert.match(inv.id, /^inv_[a-f0-9]{32}$/);
      assert.match(inv.number, new RegExp(`^${a.id.toUpperCase()}-\\d{6}$`));
      assert.equal(inv.kind, 'opening');
      assert.equal(inv.status, 'finalized');
      assert.equal(inv.period.number, 1);
      assert.deepEqual(inv.total, usd(4900));
      assert.deepEqual(inv.amountDue, usd(4900));
      assert.ok(Date.parse(inv.dueAt) > Date.parse(inv.issuedAt));
      assert.deepEqual(inv.links, { self: `/v1/invoices/${inv.id}`, html: `/v1/invoices/${inv.id}.html`, pdf: `/v1/invoices/${inv.id}.pdf` });

      const unknown = await get(`/v1/customers/${uniqueId('nobody')}/invoices`);
      assert.equal(unknown.status, 404);
      assert.deepEqual(fields(unknown), ['params.id']);
    });

    it('serves the invoice as JSON, every minor amount also as Money', async () => {
      const res = await get(`/v1/invoices/${customer.invoice.id}`);
      assert.equal(res.status, 200, res.text);
      const doc = res.json;
      assert.equal(doc.number, customer.invoice.number);
      assert.equal(doc.kind, 'opening');
      assert.deepEqual(doc.brand, { id: a.id, name: 'Acme Cloud' });
      assert.deepEqual(doc.customer, { id: customer.id, name: 'Ada Lovelace', email: `${customer.id}@example.com` });
      assert.equal(doc.lines.length, 1);
      assert.equal(doc.lines[0].kind, 'recurring');
      assert.equal(doc.lines[0].amountMinor, 4900);
      assert.deepEqual(doc.lines[0].amount, usd(4900));
      for (const [minor, money] of [
        ['subtotalMinor', 'subtotal'],
        ['discountMinor', 'discount'],
        ['taxMinor', 'tax'],
        ['creditAppliedMinor', 'creditApplied'],
        ['totalMinor', 'total'],
        ['amountDueMinor', 'amountDue'],
      ] as const) {
        assert.deepEqual(doc[money], usd(doc[minor]), money);
      }
      assert.deepEqual([doc.subtotalMinor, doc.taxMinor, doc.totalMinor, doc.amountDueMinor], [4900, 0, 4900, 4900]);
      assert.equal(doc.taxRate, '0');
      assert.equal(doc.correctsInvoice, null);
      assert.deepEqual(doc.creditNotes, []);
      assert.deepEqual(doc.creditable, usd(4900));
      assert.deepEqual(doc.outstanding, usd(4900));
      assert.deepEqual(doc.links, customer.invoice.links);
    });

    it('renders the invoice as HTML and as an inline PDF', async () => {
      const page = await get(`/v1/invoices/${customer.invoice.id}.html`);
      assert.equal(page.status, 200, page.text);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.ok(page.text.includes(customer.invoice.number), 'shows the invoice number');
      assert.ok(page.text.includes('USD 49.00'), 'shows the amount');

      const pdf = await fetch(`${stack.url}/v1/invoices/${customer.invoice.id}.pdf`, { headers: { authorization: `Bearer ${a.key}` } });
      assert.equal(pdf.status, 200);
      assert.equal(pdf.headers.get('content-type'), 'application/pdf');
      assert.equal(pdf.headers.get('content-disposition'), `inline; filename="${customer.invoice.number}.pdf"`);
      const bytes = Buffer.from(await pdf.arrayBuffer());
      assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
      assert.ok(bytes.length > 1000);
    });

    it("answers 404 to another brand's key for the list, the JSON, the HTML and the PDF", async () => {
      const id = customer.invoice.id;
      for (const path of [`/v1/customers/${customer.id}/invoices`, `/v1/invoices/${id}`, `/v1/invoices/${id}.html`, `/v1/invoices/${id}.pdf`]) {
        const res = await get(path, other.key);
        assert.equal(res.status, 404, `${path}: ${res.text}`);
        assert.equal(res.json.error.code, 'NOT_FOUND');
      }
      const credit = await creditNote(id, { reason: 'not yours' }, uniqueId('idem'), other.key);
      assert.equal(credit.status, 404, credit.text);
      assert.equal((await stack.db('invoices').where({ corrects_invoice_id: id })).length, 0);
    });

    it('answers malformed ids with 400 naming params.id', async () => {
      const valid = customer.invoice.id;
      for (const path of [
        '/v1/invoices/nope',
        '/v1/invoices/nope.html',
        '/v1/invoices/INV_0123.pdf',
        `/v1/invoices/${valid}.txt`,
        `/v1/invoices/${valid}x`,
        '/v1/customers/has%20space/invoices',
      ]) {
        const res = await get(path);
        assert.equal(res.status, 400, `${path}: ${res.text}`);
        assert.deepEqual(fields(res), ['params.id'], path);
      }
      const credit = await creditNote('inv_nope', { reason: 'x' });
      assert.equal(credit.status, 400);
      assert.deepEqual(fields(credit), ['params.id']);
      const missing = await get(`/v1/invoices/inv_${'0'.repeat(32)}`);
      assert.equal(missing.status, 404);
    });

    it('documents the invoice routes and their media types in OpenAPI', async () => {
      const doc = (await get('/v1/openapi.json', null)).json;
      assert.ok(doc.paths['/v1/customers/{id}/invoices'].get);
      assert.ok(doc.paths['/v1/invoices/{id}'].get.responses['200'].content['application/json']);
      assert.ok(doc.paths['/v1/invoices/{id}.html'].get.responses['200'].content['text/html']);
      assert.ok(doc.paths['/v1/invoices/{id}.pdf'].get.responses['200'].content['application/pdf']);
      assert.ok(doc.paths['/v1/invoices/{id}/credit-notes'].post);
      assert.match(doc.paths['/v1/tax-rates'].put.summary, /only the default row/);
    });
  });

  describe('tax rates', () => {
    it('replaces the whole table, returns it default first, and keeps brands apart', async () => {
      const t = await stack.brand();
      assert.deepEqual((await get('/v1/tax-rates', t.key)).json, { rates: [] });
      const put = await putTaxRates(t, [
        { country: 'DE', rate: '19', inclusive: true, name: 'MwSt' },
        { country: '*', rate: '7.25', inclusive: false, name: 'Sales tax' },
        { country: 'AT', rate: '20.0000', inclusive: true, name: 'USt' },
      ]);
      assert.equal(put.status, 200, put.text);
      const table = {
        rates: [
          { country: '*', rate: '7.25', inclusive: false, name: 'Sales tax' },
          { country: 'AT', rate: '20', inclusive: true, name: 'USt' },
          { country: 'DE', rate: '19', inclusive: true, name: 'MwSt' },
        ],
      };
      assert.deepEqual(put.json, table);
      assert.deepEqual((await get('/v1/tax-rates', t.key)).json, table);
      assert.deepEqual((await get('/v1/tax-rates', other.key)).json, { rates: [] }, "another brand's table is its own");

      // Replaced, not merged.
      const only = await putTaxRates(t, [{ country: '*', rate: '0', inclusive: false, name: 'No tax' }]);
      assert.equal(only.status, 200, only.text);
      assert.deepEqual((await get('/v1/tax-rates', t.key)).json, { rates: [{ country: '*', rate: '0', inclusive: false, name: 'No tax' }] });
    });

    it('rejects a bad table with 400 naming body.rates.<i>.<field>, and changes nothing', async () => {
      const t = await stack.brand();
      const good = { country: '*', rate: '19', inclusive: false, name: 'VAT' };
      assert.equal((await putTaxRates(t, [good])).status, 200);
      const cases: Array<[unknown, string[]]> = [
        [[{ ...good, country: 'DE' }], ['body.rates']],
        [[{ ...good, rate: '100.5' }], ['body.rates.0.rate']],
        [[{ ...good, rate: '7.12345' }], ['body.rates.0.rate']],
        [[{ ...good, rate: 19 }], ['body.rates.0.rate']],
        [[{ ...good, rate: '-1' }], ['body.rates.0.rate']],
        [[good, { ...good, country: 'de' }], ['body.rates.1.country']],
        [[good, { ...good, country: 'DE' }, { ...good, country: 'DE' }], ['body.rates.2.country']],
        [[{ ...good, inclusive: 'yes' }], ['body.rates.0.inclusive']],
        [[{ ...good, name: ' ' }], ['body.rates.0.name']],
        [[{ ...good, extra: 1 }], ['body.rates.0.extra']],
        [[], ['body.rates']],
      ];
      for (const [rates, expected] of cases) {
        const res = await putTaxRates(t, rates);
        assert.equal(res.status, 400, `${JSON.stringify(rates)}: ${res.text}`);
        assert.equal(res.json.error.code, 'VALIDATION_FAILED');
        assert.deepEqual(fields(res), expected, JSON.stringify(rates));
      }
      assert.deepEqual((await get('/v1/tax-rates', t.key)).json, { rates: [good] }, 'unchanged');
    });
  });

  describe('credit notes', () => {
    /** A brand charging 19 % VAT on top: "pro" is invoiced at 49.00 + 9.31 = 58.31. */
    let vat: { id: string; key: string };

    before(async () => {
      vat = await stack.brand();
      await seedPlans(stack.db, vat.id);
      const put = await putTaxRates(vat, [{ country: '*', rate: '19', inclusive: false, name: 'VAT' }]);
      assert.equal(put.status, 200, put.text);
    });

    const ledgerOf = async (documentId: string) => {
      const rows: Array<{ account: string; amount_minor: string }> = await stack.db('ledger_entries as e')
        .join('ledger_transactions as t', 't.id', 'e.transaction_id')
        .where({ 't.document_id': documentId })
        .select('e.account', 'e.amount_minor');
      return Object.fromEntries(rows.map((r) => [r.account, Number(r.amount_minor)]));
    };

    it('credits part of an invoice, then the remainder, and refuses to credit more', async () => {
      const { id: customerId, invoice } = await signUp(vat);
      assert.deepEqual(invoice.total, usd(5831));
      const cn = (body: unknown) => creditNote(invoice.id, body, uniqueId('idem'), vat.key);

      const first = await cn({ amount: '10.00', reason: 'Outage on 3 March' });
      assert.equal(first.status, 201, first.text);
      assert.equal(first.headers.get('location'), `/v1/invoices/${first.json.id}`);
      const note = first.json;
      assert.equal(note.kind, 'credit_note');
      assert.equal(note.status, 'finalized');
      assert.match(note.number, new RegExp(`^${vat.id.toUpperCase()}-\\d{6}$`));
      assert.equal(Number(note.number.slice(-6)), Number(invoice.number.slice(-6)) + 1, 'the next gapless number');
      // Tax credited in proportion: round(9.31 × 10.00 / 58.31) = 1.60.
      assert.deepEqual([note.subtotalMinor, note.taxMinor, note.totalMinor, note.amountDueMinor, note.creditAppliedMinor], [-840, -160, -1000, -1000, 0]);
      assert.deepEqual(note.total, usd(-1000));
      assert.equal(note.taxRate, '19');
      assert.equal(note.lines.length, 1);
      assert.deepEqual(
        { kind: note.lines[0].kind, description: note.lines[0].description, amount: note.lines[0].amount },
        { kind: 'credit', description: 'Outage on 3 March', amount: usd(-840) },
      );
      assert.deepEqual(note.correctsInvoice, { id: invoice.id, number: invoice.number, links: invoice.links });
      assert.match(note.paymentInstructions, new RegExp(`corrects invoice ${invoice.number}`));
      assert.deepEqual(await ledgerOf(note.id), { revenue: 840, tax_payable: 160, receivables: -1000 });

      // The invoice itself is never edited; it lists the note and what is left.
      const original = (await get(`/v1/invoices/${invoice.id}`, vat.key)).json;
      assert.deepEqual([original.totalMinor, original.taxMinor, original.amountDueMinor], [5831, 931, 5831]);
      assert.deepEqual(
        original.creditNotes.map((n: { id: string; total: unknown }) => [n.id, n.total]),
        [[note.id, usd(-1000)]],
      );
      assert.deepEqual(original.creditable, usd(4831));
      assert.deepEqual(original.outstanding, usd(4831));

      const rest = await cn({ reason: 'Cancelled at customer request' });
      assert.equal(rest.status, 201, rest.text);
      assert.deepEqual([rest.json.totalMinor, rest.json.taxMinor, rest.json.amountDueMinor], [-4831, -771, -4831], 'exactly the remaining tax');
      assert.deepEqual(await ledgerOf(rest.json.id), { revenue: 4060, tax_payable: 771, receivables: -4831 });

      const before = await stack.db('invoices').where({ brand_id: vat.id }).count({ n: '*' });
      const over = await cn({ amount: '0.01', reason: 'One cent more' });
      assert.equal(over.status, 422, over.text);
      assert.equal(over.json.error.code, 'EXCEEDS_CREDITABLE');
      assert.deepEqual(fields(over), ['body.amount']);
      assert.deepEqual(await stack.db('invoices').where({ brand_id: vat.id }).count({ n: '*' }), before, 'nothing written');

      const after = (await get(`/v1/invoices/${invoice.id}`, vat.key)).json;
      assert.deepEqual(after.creditable, usd(0));
      assert.deepEqual(after.outstanding, usd(0));

      const list = (await get(`/v1/customers/${customerId}/invoices`, vat.key)).json.data;
      assert.deepEqual(
        list.map((i: { id: string; kind: string }) => [i.id, i.kind]),
        [
          [rest.json.id, 'credit_note'],
          [note.id, 'credit_note'],
          [invoice.id, 'opening'],
        ],
        'newest first',
      );
      assert.deepEqual(list[0].amountDue, usd(-4831));

      const page = await get(`/v1/invoices/${note.id}.html`, vat.key);
      assert.equal(page.status, 200);
      assert.ok(page.text.includes(`Credit note ${note.number}`));
      assert.ok(page.text.includes(invoice.number), 'names the invoice it corrects');
      const pdf = await fetch(`${stack.url}/v1/invoices/${note.id}.pdf`, { headers: { authorization: `Bearer ${vat.key}` } });
      assert.equal(pdf.status, 200);
      assert.equal(Buffer.from(await pdf.arrayBuffer()).subarray(0, 4).toString('latin1'), '%PDF');
      // `|| 0`: customerCreditMinor answers -0 when the customer has no credit entries.
      assert.equal((await customerCreditMinor(stack.db, vat.id, customerId, 'USD')) || 0, 0, 'all of it came off what was owed');
    });

    it('issues at most what is creditable when two notes race for the same invoice', async () => {
      const { invoice } = await signUp(vat);
      const results = await Promise.all([
        creditNote(invoice.id, { amount: '40.00', reason: 'Race one' }, uniqueId('idem'), vat.key),
        creditNote(invoice.id, { amount: '40.00', reason: 'Race two' }, uniqueId('idem'), vat.key),
      ]);
      assert.deepEqual(results.map((r) => r.status).sort(), [201, 422]);
      const notes = await stack.db('invoices').where({ corrects_invoice_id: invoice.id });
      assert.equal(notes.length, 1);
    });

    it('returns the same credit note for a repeated Idempotency-Key, with no second ledger transaction', async () => {
      const { invoice } = await signUp(a);
      const key = uniqueId('idem');
      const first = await creditNote(invoice.id, { amount: '5.00', reason: 'Goodwill' }, key);
      assert.equal(first.status, 201, first.text);
      const again = await creditNote(invoice.id, { amount: '5.00', reason: 'Goodwill' }, key);
      assert.equal(again.status, 200, again.text);
      assert.deepEqual(again.json, first.json);
      assert.equal((await stack.db('invoices').where({ corrects_invoice_id: invoice.id })).length, 1);
      assert.equal((await stack.db('ledger_transactions').where({ kind: 'credit_note', document_id: first.json.id })).length, 1);

      const different = await creditNote(invoice.id, { amount: '6.00', reason: 'Goodwill' }, key);
      assert.equal(different.status, 409, different.text);
      assert.equal(different.json.error.code, 'IDEMPOTENCY_KEY_REUSED');
      assert.deepEqual(fields(different), ['header.idempotency-key']);
      assert.equal((await stack.db('invoices').where({ corrects_invoice_id: invoice.id })).length, 1);
    });

    it('answers bad credit-note requests with 400 naming the field, writing nothing', async () => {
      const { invoice } = await signUp(a);
      const cases: Array<[unknown, string | null, string[]]> = [
        [{ amount: '1.00', reason: 'x' }, null, ['header.idempotency-key']],
        [{ amount: '1.00', reason: 'x' }, '', ['header.idempotency-key']],
        [{ amount: '1.234', reason: 'x' }, uniqueId('idem'), ['body.amount']],
        [{ amount: '0.00', reason: 'x' }, uniqueId('idem'), ['body.amount']],
        [{ amount: '-1', reason: 'x' }, uniqueId('idem'), ['body.amount']],
        [{ amount: 12.5, reason: 'x' }, uniqueId('idem'), ['body.amount']],
        [{ amount: '1.00' }, uniqueId('idem'), ['body.reason']],
        [{ amount: '1.00', reason: 'x', extra: true }, uniqueId('idem'), ['body.extra']],
      ];
      for (const [body, key, expected] of cases) {
        const res = await creditNote(invoice.id, body, key);
        assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
        assert.deepEqual(fields(res), expected, JSON.stringify(body));
      }
      const tooMuch = await creditNote(invoice.id, { amount: '49.01', reason: 'x' });
      assert.equal(tooMuch.status, 422);
      assert.deepEqual(fields(tooMuch), ['body.amount']);
      assert.equal((await stack.db('invoices').where({ corrects_invoice_id: invoice.id })).length, 0);

      const note = await creditNote(invoice.id, { amount: '1.00', reason: 'x' });
      assert.equal(note.status, 201);
      const ofNote = await creditNote(note.json.id, { reason: 'credit the credit' });
      assert.equal(ofNote.status, 422);
      assert.equal(ofNote.json.error.code, 'NOT_CREDITABLE');
    });

    it('returns credit for an already-paid invoice to the customer credit balance', async () => {
      const { id: customerId, invoice } = await signUp(a);
      // Paid in full, as collections records a succeeded charge.
      await recordCharge(stack.db, {
        brandId: a.id,
        customerId,
        invoiceId: invoice.id,
        idempotencyKey: `${invoice.id}:test`,
        gateway: 'sandbox',
        status: 'succeeded',
        amountMinor: 4900,
        currency: 'USD',
      });

      const res = await creditNote(invoice.id, { amount: '10.00', reason: 'Paid twice for a seat' });
      assert.equal(res.status, 201, res.text);
      assert.deepEqual([res.json.totalMinor, res.json.amountDueMinor, res.json.creditAppliedMinor], [-1000, 0, -1000]);
      assert.deepEqual(await ledgerOf(res.json.id), { revenue: 1000, customer_credit: -1000 });
      assert.equal(await customerCreditMinor(stack.db, a.id, customerId, 'USD'), 1000, 'the next invoice can use it');
      const page = await get(`/v1/invoices/${res.json.id}.html`);
      assert.ok(page.text.includes('Added to your credit balance'));
      assert.deepEqual((await get(`/v1/invoices/${invoice.id}`)).json.outstanding, usd(0));
    });
  });
});
