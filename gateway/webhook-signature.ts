/**
 * The sandbox gateway's webhook signature, shared by the sender (the sandbox server) and the
 * receiver (the sandbox adapter): `Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 * "<t>.<raw body>">`. Signing the timestamp with the body lets a receiver refuse replays of an
 * old, validly signed delivery.
 */
import crypto from 'node:crypto';
import { WEBHOOK_TOLERANCE_SECONDS, WebhookVerificationError } from './adapter';

export const SIGNATURE_HEADER = 'Sandbox-Signature';

export function computeSignature(secret: string, timestamp: number, rawBody: Buffer | string): string {
  return crypto.createHmac('sha256', secret).update(`${timestamp}.`).update(rawBody).digest('hex');
}

/** The header value for a delivery signed at `timestamp` (unix seconds). */
export function signatureHeader(secret: string, rawBody: Buffer | string, timestamp: number): string {
  return `t=${timestamp},v1=${computeSignature(secret, timestamp, rawBody)}`;
}

/**
 * Throws WebhookVerificationError unless one of the header's v1 signatures (several while a
 * secret is being rotated) matches and its timestamp is within the tolerance of `nowSeconds`.
 */
export function verifySignature(opts: {
  secret: string;
  rawBody: Buffer;
  header: string | undefined;
  nowSeconds: number;
  toleranceSeconds?: number;
}): void {
  if (!opts.header) throw new WebhookVerificationError('missing_signature', `no ${SIGNATURE_HEADER} header`);
  let timestamp: number | undefined;
  const signatures: string[] = [];
  for (const part of opts.header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(value.toLowerCase());
  }
  if (timestamp === undefined || signatures.length === 0) {
    throw new WebhookVerificationError('malformed_signature', `${SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex>`);
  }
  const expected = Buffer.from(computeSignature(opts.secret, timestamp, opts.rawBody), 'hex');
  const matches = signatures.some((sig) => crypto.timingSafeEqual(Buffer.from(sig, 'hex'), expected));
  if (!matches) throw new WebhookVerificationError('bad_signature', 'webhook signature does not match its body and timestamp');
  const tolerance = opts.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS;
  if (Math.abs(opts.nowSeconds - timestamp) > tolerance) {
    throw new WebhookVerificationError(
      'timestamp_outside_tolerance',
      `webhook timestamp ${timestamp} is more than ${tolerance} s from now (${opts.nowSeconds}): refused as a possible replay`,
    );
  }
}
