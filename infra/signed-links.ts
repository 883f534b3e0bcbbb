/**
 * Links a customer can open without an API key: the invoice page and PDF linked from the invoice
 * email. The token names the brand, the invoice and an expiry, signed with HMAC-SHA256; the API
 * serves the document only while the signature holds and the link has not expired.
 */
import crypto from 'node:crypto';

export interface InvoiceLink {
  brandId: string;
  invoiceId: string;
}

/** How long an emailed invoice link works. */
export const INVOICE_LINK_LIFETIME_MS = 90 * 24 * 60 * 60 * 1000;

function mac(secret: string, payload: string): string {
  return crypto.createHmac('sha256', secret).update(payload).digest('base64url');
}

export function signInvoiceLink(secret: string, link: InvoiceLink, expiresAt: Date): string {
  const payload = Buffer.from(JSON.stringify({ b: link.brandId, i: link.invoiceId, e: Math.floor(expiresAt.getTime() / 1000) })).toString('base64url');
  return `${payload}.${mac(secret, payload)}`;
}

export type LinkCheck = { ok: true; link: InvoiceLink } | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' };

export function verifyInvoiceLink(secret: string, token: string, now = new Date()): LinkCheck {
  const [payload, signature, extra] = token.split('.');
  if (!payload || !signature || extra !== undefined) return { ok: false, reason: 'malformed' };
  const expected = Buffer.from(mac(secret, payload));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !crypto.timingSafeEqual(expected, given)) return { ok: false, reason: 'bad_signature' };
  let body: { b?: unknown; i?: unknown; e?: unknown };
  try {
    body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof body.b !== 'string' || typeof body.i !== 'string' || typeof body.e !== 'number') return { ok: false, reason: 'malformed' };
  if (body.e * 1000 <= now.getTime()) return { ok: false, reason: 'expired' };
  return { ok: true, link: { brandId: body.b, invoiceId: body.i } };
}
