import { createHmac, timingSafeEqual } from 'node:crypto';

/** Headers as Node gives them (lower-case names; a value may repeat) or as a plain record. */
export type HeaderBag = Record<string, string | string[] | undefined> | Headers;

/** Options of {@link verifyWebhook}. */
export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from now, either way (default 300 s, as Standard Webhooks). */
  toleranceSeconds?: number;
  /** The current time (tests). */
  now?: () => number;
}

/** The request is not a genuine, fresh call signed with one of the given secrets. */
export class WebhookVerificationError extends Error {
  override readonly name = 'WebhookVerificationError';
}

/** What a verified request says about itself. */
export interface VerifiedWebhook {
  /** `webhook-id`: the message id for a delivery, `<id>:check:<n>` for a check-back call. */
  id: string;
  timestamp: number;
}

/**
 * Verifies a Standard Webhooks signature: `webhook-signature` holds one or more
 * `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (several while a secret is being rotated), and
 * one must match a secret. The comparison is constant-time, and a timestamp outside the tolerance
 * is refused so a captured request cannot be replayed later. `body` must be the raw bytes
 * received: re-serialised JSON does not verify.
 */
export function verifyWebhook(secrets: string | readonly string[], headers: HeaderBag, body: string | Buffer, options: VerifyOptions = {}): VerifiedWebhook {
  const id = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestampText || !signatures) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature header');
  if (!/^\d{1,15}$/.test(timestampText)) throw new WebhookVerificationError('webhook-timestamp is not a number of seconds');
  const timestamp = Number(timestampText);
  const now = Math.floor((options.now?.() ?? Date.now()) / 1000);
  const tolerance = options.toleranceSeconds ?? 300;
  if (Math.abs(now - timestamp) > tolerance) throw new WebhookVerificationError(`webhook-timestamp is more than ${tolerance} s from now`);

  const signed = Buffer.concat([Buffer.from(`${id}.${timestampText}.`), typeof body === 'string' ? Buffer.from(body) : body]);
  const expected = (typeof secrets === 'string' ? [secrets] : secrets).map((s) => createHmac('sha256', secretKey(s)).update(signed).digest());
  for (const candidate of signatures.split(' ')) {
    const [version, value] = candidate.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    // timingSafeEqual needs equal lengths; a wrong length says nothing about the secret.
    if (expected.some((e) => e.length === given.length && timingSafeEqual(e, given))) return { id, timestamp };
  }
  throw new WebhookVerificationError('no signature matches');
}

/** The HMAC key of a `whsec_<base64>` secret. */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

function header(headers: HeaderBag, name: string): string | undefined {
  const value = headers instanceof Headers ? headers.get(name) ?? undefined : headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
