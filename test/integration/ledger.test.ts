import assert from 'node:assert/strict';
import { checkLedger, postTransaction, UnbalancedTransactionError } from '../../data/ledger';
import { ensureBrand } from '../../infra/brands';
import type { Db } from '../../infra/db';
import { testDb, uniqueId } from '../support/helpers';

describe('data/ledger (PostgreSQL)', () => {
  let db: Db;
  let brand: string;
  before(async () => {
    db = testDb();
    brand = uniqueId('ledger').toLowerCase().slice(0, 40);
    await ensureBrand(db, { id: brand, name: 'Ledger', currency: 'USD', mode: 'sandbox' });
  });
  after(async () => db?.destroy());

  it('refuses to post a transaction that does not balance, writing nothing', async () => {
    await assert.rejects(
      postTransaction(db, { brandId: brand, customerId: null, kind: 'test', documentId: 'doc-1', currency: 'USD', entries: [{ account: 'cash', amountMinor: 100 }] }),
      UnbalancedTransactionError,
    );
    assert.equal((await db('ledger_transactions').where({ brand_id: brand })).length, 0);
  });

  it('posts a document once however often it is retried', async () => {
    const posting = {
      brandId: brand,
      customerId: null,
      kind: 'test',
      documentId: 'doc-2',
      currency: 'USD',
      entries: [
        { account: 'cash', amountMinor: 250 },
        { account: 'revenue', amountMinor: -250 },
      ],
    };
    const first = await postTransaction(db, posting);
    const again = await postTransaction(db, posting);
    assert.equal(first.posted, true);
    assert.equal(again.posted, false);
    assert.equal(again.id, first.id);
    assert.equal((await db('ledger_entries').where({ transaction_id: first.id })).length, 2);
  });

  it('finds an unbalanced transaction and receivables that disagree with the invoices', async () => {
    const id = `txn_${uniqueId('bad')}`;
    await db('ledger_transactions').insert({ id, brand_id: brand, kind: 'test', document_id: id, currency: 'USD' });
    await db('ledger_entries').insert({ transaction_id: id, account: 'receivables', amount_minor: 7 });
    try {
      const check = await checkLedger(db, brand);
      assert.deepEqual(check.unbalanced, [{ id, sum: '7' }]);
      assert.deepEqual(check.receivablesMismatches, [{ brandId: brand, currency: 'USD', ledger: '7', documents: '0' }]);
    } finally {
      // The run-wide ledger check after each test must see a clean ledger again.
      await db('ledger_entries').where({ transaction_id: id }).delete();
      await db('ledger_transactions').where({ id }).delete();
    }
    assert.deepEqual((await checkLedger(db, brand)).unbalanced, []);
  });
});
