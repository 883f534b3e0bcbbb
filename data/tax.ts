/**
 * The brand's tax table: one row per country ("*" is the default). It is replaced as a whole, in
 * one transaction, so an invoice being finalized at the same time sees either the old table or
 * the new one, never half of each.
 */
import type { Db } from '../infra/db';

export interface TaxRate {
  /** ISO 3166-1 alpha-2 code, or "*" for every country without its own row. */
  country: string;
  /** Percent as an exact decimal with at most 4 decimals, e.g. "19" or "7.25". */
  rate: string;
  inclusive: boolean;
  name: string;
}

/** "19.0000" → "19", "7.2500" → "7.25". */
function plainRate(stored: unknown): string {
  const text = String(stored);
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

/** The brand's rates, the default ("*") first, then by country. */
export async function listTaxRates(db: Db, brandId: string): Promise<TaxRate[]> {
  const rows: Array<{ country: string; rate: string; inclusive: boolean; name: string }> = await db('tax_rates')
    .where({ brand_id: brandId })
    .orderByRaw("country <> '*', country")
    .select('country', 'rate', 'inclusive', 'name');
  return rows.map((r) => ({ country: r.country, rate: plainRate(r.rate), inclusive: r.inclusive, name: r.name }));
}

/** Replaces the brand's whole table; the caller has validated it (unique countries, a "*" row). */
export async function replaceTaxRates(db: Db, brandId: string, rates: TaxRate[]): Promise<TaxRate[]> {
  await db.transaction(async (trx) => {
    // Two replacements of the same brand's table queue up behind the brand row instead of
    // colliding on the (brand, country) key.
    await trx('brands').where({ id: brandId }).forUpdate().first('id');
    await trx('tax_rates').where({ brand_id: brandId }).delete();
    if (rates.length > 0) {
      await trx('tax_rates').insert(rates.map((r) => ({ brand_id: brandId, country: r.country, rate: r.rate, inclusive: r.inclusive, name: r.name })));
    }
  });
  return listTaxRates(db, brandId);
}
