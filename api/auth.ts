/**
 * API keys: `cl_<mode>_<random>`, shown once, stored as a sha256 hash, scoped to one brand.
 * A high-entropy random key needs no slow hash; sha256 makes lookup a single indexed read.
 */
import crypto from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Db } from '../infra/db';
import { ApiError } from './errors';

export interface Brand {
  id: string;
  name: string;
  currency: string;
  mode: 'sandbox' | 'live';
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      brand?: Brand;
    }
  }
}

export function hashApiKey(key: string): string {
  return crypto.createHash('sha256').update(key, 'utf8').digest('hex');
}

export function generateApiKey(mode: Brand['mode']): string {
  return `cl_${mode === 'live' ? 'live' : 'test'}_${crypto.randomBytes(24).toString('base64url')}`;
}

/** Creates a key for a brand and returns it in clear, the only time it is ever visible. */
export async function createApiKey(db: Db, brandId: string, label = ''): Promise<string> {
  const brand = await db<Brand>('brands').where({ id: brandId }).first();
  if (!brand) throw new Error(`brand "${brandId}" does not exist`);
  const key = generateApiKey(brand.mode);
  await db('api_keys').insert({ brand_id: brandId, key_hash: hashApiKey(key), prefix: key.slice(0, 12), label });
  return key;
}

export async function brandForKey(db: Db, key: string): Promise<Brand | undefined> {
  return db('api_keys')
    .join('brands', 'brands.id', 'api_keys.brand_id')
    .where({ 'api_keys.key_hash': hashApiKey(key) })
    .whereNull('api_keys.revoked_at')
    .first('brands.id', 'brands.name', 'brands.currency', 'brands.mode');
}

const unauthorized = (message: string) => new ApiError(401, 'UNAUTHORIZED', message, [{ field: 'header.authorization', message }]);

export function requireApiKey(db: Db): RequestHandler {
  return async (req, _res, next) => {
    try {
      const header = req.get('authorization');
      if (!header) throw unauthorized('missing Authorization header; send "Authorization: Bearer <api key>"');
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      if (!match) throw unauthorized('Authorization header must be "Bearer <api key>"');
      const brand = await brandForKey(db, match[1]!);
      if (!brand) throw unauthorized('unknown or revoked API key');
      req.brand = brand;
      next();
    } catch (err) {
      next(err);
    }
  };
}
