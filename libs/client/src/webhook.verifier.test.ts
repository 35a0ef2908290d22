import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { verifyWebhook, WebhookVerificationError } from './webhook.verifier';

const secret = `whsec_${randomBytes(24).toString('base64')}`;
const other = `whsec_${randomBytes(24).toString('base64')}`;
const body = JSON.stringify({ orderId: 1001, note: 'héllo' });

// Signed by the independent Standard Webhooks implementation, so both sides are not the same code.
function signed(id: string, at: Date, withSecret = secret, payload = body) {
  const signature = new Webhook(withSecret).sign(id, at, payload);
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature };
}

describe('verifyWebhook', () => {
  it('accepts what the reference implementation signs, and our accept matches its accept', () => {
    const headers = signed('order-1:paid', new Date());
    expect(verifyWebhook(secret, headers, body)).toMatchObject({ id: 'order-1:paid' });
    expect(verifyWebhook(secret, headers, Buffer.from(body))).toMatchObject({ id: 'order-1:paid' });
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
  });

  it('refuses a changed body, a changed id, a wrong secret and a missing header', () => {
    const headers = signed('order-1:paid', new Date());
    expect(() => verifyWebhook(secret, headers, body.replace('1001', '1002'))).toThrow(WebhookVerificationError);
    expect(() => verifyWebhook(secret, { ...headers, 'webhook-id': 'order-2:paid' }, body)).toThrow(/no signature matches/);
    expect(() => verifyWebhook(other, headers, body)).toThrow(/no signature matches/);
    expect(() => verifyWebhook(secret, { ...headers, 'webhook-signature': undefined }, body)).toThrow(/missing/);
    expect(() => verifyWebhook(secret, { ...headers, 'webhook-signature': 'v2,abc v1' }, body)).toThrow(/no signature matches/);
  });

  it('refuses a replay outside the tolerance, either way, and accepts inside it', () => {
    const now = Date.now();
    const old = signed('m-1', new Date(now - 301_000));
    expect(() => verifyWebhook(secret, old, body, { now: () => now })).toThrow(/300 s/);
    const future = signed('m-1', new Date(now + 301_000));
    expect(() => verifyWebhook(secret, future, body, { now: () => now })).toThrow(/300 s/);
    expect(verifyWebhook(secret, signed('m-1', new Date(now - 60_000)), body, { now: () => now, toleranceSeconds: 120 }).id).toBe('m-1');
    expect(() => verifyWebhook(secret, { ...old, 'webhook-timestamp': '1e9' }, body)).toThrow(/number of seconds/);
  });

  it('accepts any of several signatures (secret rotation) and any of several secrets', () => {
    const at = new Date();
    const a = signed('m-2', at, secret)['webhook-signature'];
    const b = signed('m-2', at, other)['webhook-signature'];
    const headers = { ...signed('m-2', at), 'webhook-signature': `${b} ${a}` };
    expect(verifyWebhook(secret, headers, body).id).toBe('m-2');
    expect(verifyWebhook([randomSecret(), other], signed('m-2', at, other), body).id).toBe('m-2');
  });

  it('works with fetch Headers and with a raw HMAC computed by hand', () => {
    const ts = Math.floor(Date.now() / 1000);
    const sig = createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(`m-3.${ts}.${body}`).digest('base64');
    const headers = new Headers({ 'webhook-id': 'm-3', 'webhook-timestamp': String(ts), 'webhook-signature': `v1,${sig}` });
    expect(verifyWebhook(secret, headers, body).id).toBe('m-3');
  });
});

function randomSecret() {
  return `whsec_${randomBytes(24).toString('base64')}`;
}
