/**
 * The double-entry ledger. A financial event is one transaction, written in the same database
 * transaction as the record it belongs to, idempotent by (brand, kind, document). Debits are
 * positive, credits negative; every transaction sums to zero, and `checkLedger` proves it.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Db } from '../infra/db';

export interface LedgerPosting {
  brandId: string;
  customerId: string | null;
  kind: string;
  documentId: string;
  currency: string;
  entries: Array<{ account: string; amountMinor: number }>;
}

export class UnbalancedTransactionError extends Error {
  override name = 'UnbalancedTransactionError';
}

/** Posts a balanced transaction; a second posting for the same document is a no-op. */
export async function postTransaction(trx: Knex.Transaction | Db, p: LedgerPosting): Promise<{ id: string; posted: boolean }> {
  const sum = p.entries.reduce((acc, e) => acc + BigInt(e.amountMinor), 0n);
  if (sum !== 0n) throw new UnbalancedTransactionError(`${p.kind} ${p.documentId} does not balance: off by ${sum}`);
  const id = `txn_${crypto.randomUUID()}`;
  const inserted = await trx('ledger_transactions')
    .insert({ id, brand_id: p.brandId, customer_id: p.customerId, kind: p.kind, document_id: p.documentId, currency: p.currency })
    .onConflict(['brand_id', 'kind', 'document_id'])
    .ignore()
    .returning('id');
  if (inserted.length === 0) {
    const existing = await trx('ledger_transactions').where({ brand_id: p.brandId, kind: p.kind, document_id: p.documentId }).first('id');
    return { id: existing.id as string, posted: false };
  }
  if (p.entries.length > 0) {
    await trx('ledger_entries').insert(
      p.entries.map((e) => ({ transaction_id: id, account: e.account, customer_id: p.customerId, amount_minor: e.amountMinor })),
    );
  }
  return { id, posted: true };
}

/** The sum of a customer's entries on one account in one currency (debits positive). */
export async function customerAccountMinor(trx: Knex.Transaction | Db, brandId: string, customerId: string, account: string, currency: string): Promise<number> {
  const row = await trx('ledger_entries as e')
    .join('ledger_transactions as t', 't.id', 'e.transaction_id')
    .where({ 't.brand_id': brandId, 'e.customer_id': customerId, 'e.account': account, 't.currency': currency })
    .sum<{ sum: string | null }>({ sum: 'e.amount_minor' })
    .first();
  return Number(row?.sum ?? 0);
}

/** A customer's available credit: what the customer_credit liability owes them. */
export async function customerCreditMinor(trx: Knex.Transaction | Db, brandId: string, customerId: string, currency: string): Promise<number> {
  return -(await customerAccountMinor(trx, brandId, customerId, 'customer_credit', currency));
}

export interface LedgerCheck {
  transactions: number;
  unbalanced: Array<{ id: string; sum: string }>;
  /** Receivables per brand and currency must equal what the documents say is still owed. */
  receivablesMismatches: Array<{ brandId: string; currency: string; ledger: string; documents: string }>;
}

/**
 * The invariants the tests assert after every integration test: every transaction sums to
 * zero, and the receivables account equals the invoices behind it.
 */
export async function checkLedger(db: Db, brandId?: string): Promise<LedgerCheck> {
  // One snapshot for all the queries, so a finalize committing meanwhile cannot look like a mismatch.
  const trx = await db.transaction({ isolationLevel: 'repeatable read', readOnly: true });
  try {
    return await checkLedgerIn(trx, brandId);
  } finally {
    await trx.rollback();
  }
}

async function checkLedgerIn(db: Knex.Transaction, brandId?: string): Promise<LedgerCheck> {
  const scope = (q: Knex.QueryBuilder, column: string) => (brandId ? q.where(column, brandId) : q);
  const unbalanced = await scope(
    db('ledger_transactions as t').leftJoin('ledger_entries as e', 'e.transaction_id', 't.id').groupBy('t.id').havingRaw('coalesce(sum(e.amount_minor), 0) <> 0'),
    't.brand_id',
  ).select('t.id', db.raw('coalesce(sum(e.amount_minor), 0)::text as sum'));
  const counted = (await scope(db('ledger_transactions'), 'brand_id').count({ count: '*' })) as Array<{ count: string }>;
  const count = counted[0]?.count ?? '0';
  const ledger = await scope(
    db('ledger_entries as e').join('ledger_transactions as t', 't.id', 'e.transaction_id').where('e.account', 'receivables').groupBy('t.brand_id', 't.currency'),
    't.brand_id',
  ).select('t.brand_id', 't.currency', db.raw('sum(e.amount_minor)::text as amount'));
  // What the documents say is owed: invoices' amounts due (credit notes carry negative ones),
  // less succeeded payments and write-offs.
  const owed = (table: string, amount: string, sign: string, where: (q: Knex.QueryBuilder) => Knex.QueryBuilder) =>
    scope(where(db(table)).groupBy('brand_id', 'currency'), 'brand_id').select('brand_id', 'currency', db.raw(`${sign}sum(${amount}) as amount`));
  const parts = [
    ...(await owed('invoices', 'amount_due_minor', '', (q) => q.whereNot('status', 'void'))),
    ...(await owed('payments', 'amount_minor', '-', (q) => q.where('status', 'succeeded'))),
    ...(await owed('write_offs', 'amount_minor', '-', (q) => q)),
  ];
  const sums = new Map<string, { brand_id: string; currency: string; amount: bigint }>();
  for (const p of parts as Array<{ brand_id: string; currency: string; amount: string }>) {
    const k = `${p.brand_id}/${p.currency}`;
    const prev = sums.get(k)?.amount ?? 0n;
    sums.set(k, { brand_id: p.brand_id, currency: p.currency, amount: prev + BigInt(p.amount) });
  }
  const documents = [...sums.values()].map((v) => ({ ...v, amount: v.amount.toString() }));
  const key = (r: { brand_id: string; currency: string }) => `${r.brand_id}/${r.currency}`;
  const byKey = new Map<string, { ledger: string; documents: string }>();
  for (const r of ledger) byKey.set(key(r), { ledger: r.amount, documents: '0' });
  for (const r of documents) byKey.set(key(r), { ledger: byKey.get(key(r))?.ledger ?? '0', documents: r.amount });
  const receivablesMismatches = [...byKey.entries()]
    .filter(([, v]) => BigInt(v.ledger) !== BigInt(v.documents))
    .map(([k, v]) => ({ brandId: k.split('/')[0]!, currency: k.split('/')[1]!, ...v }));
  return { transactions: Number(count), unbalanced, receivablesMismatches };
}
