/** Brand (tenant) administration used by `npm start`'s seed and the api-key script. */
import { BRAND_ID } from '../domain/ids';
import { CURRENCY_CODE } from '../domain/money';
import type { Db } from './db';

export interface NewBrand {
  id: string;
  name: string;
  currency: string;
  mode: 'sandbox' | 'live';
}

export async function ensureBrand(db: Db, brand: NewBrand): Promise<void> {
  if (!BRAND_ID.test(brand.id)) throw new Error(`brand id "${brand.id}" must be lowercase letters, digits and "-" (max 40)`);
  if (!CURRENCY_CODE.test(brand.currency)) throw new Error(`currency "${brand.currency}" must be an ISO 4217 code such as USD`);
  await db('brands').insert(brand).onConflict('id').ignore();
}
