import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json';
import { decodeCursor, encodeCursor } from './cursor';
import { checkUrlProblem, headersProblem, MAX_PAYLOAD_DEPTH, payloadProblem } from './message-rules';
import { DEFAULT_CHECK_POLICY, resolveCheckPolicy } from './check-policy';

describe('canonicalJson', () => {
  it('is independent of key order at every depth', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe(
      canonicalJson({ a: { c: null, d: [1, { y: 2, z: 1 }] }, b: 1 }),
    );
  });
  it('keeps array order and drops undefined members', () => {
    expect(canonicalJson([2, 1])).not.toBe(canonicalJson([1, 2]));
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
  });
});

describe('cursor', () => {
  it('round-trips a position', () => {
    expect(decodeCursor(encodeCursor({ seq: 42n }))).toEqual({ seq: 42n });
    expect(decodeCursor(encodeCursor({ seq: 18446744073709551615n }))).toEqual({ seq: 18446744073709551615n });
  });
  it('refuses cursors it did not make instead of restarting the listing', () => {
    for (const bad of ['', 'abc', '!!!', Buffer.from('v1:-1').toString('base64url'), Buffer.from('v2:5').toString('base64url'),
      Buffer.from('v1:18446744073709551616').toString('base64url'), Buffer.from('v1:0').toString('base64url')]) {
      expect(decodeCursor(bad), bad).toBeUndefined();
    }
  });
});

describe('payloadProblem', () => {
  const nest = (depth: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < depth; i++) value = [value];
    return value;
  };
  it('accepts payloads up to the depth limit', () => {
    expect(payloadProblem(nest(MAX_PAYLOAD_DEPTH))).toBeUndefined();
    expect(payloadProblem({ a: 1 })).toBeUndefined();
    expect(payloadProblem(null)).toBeUndefined();
  });
  it('refuses a payload one level deeper, naming the field', () => {
    expect(payloadProblem(nest(MAX_PAYLOAD_DEPTH + 1))?.field).toBe('payload');
  });
  it('refuses integers that would not survive unchanged, anywhere in the payload', () => {
    expect(payloadProblem({ a: [1, { b: 2 ** 53 }] })?.reason).toMatch(/send them as strings/);
    expect(payloadProblem({ a: -(2 ** 53) })?.field).toBe('payload');
    expect(payloadProblem({ a: 2 ** 53 - 1, b: -(2 ** 53 - 1), c: 0.1, d: 1.5 })).toBeUndefined();
  });
  it('survives hostile nesting without a stack overflow', () => {
    expect(payloadProblem(nest(200_000))?.field).toBe('payload');
  });
});

describe('headersProblem', () => {
  it('accepts ordinary headers', () => {
    expect(headersProblem({ 'x-tenant': 'a', 'X-Trace': 'b' })).toBeUndefined();
  });
  it('refuses headers Herald sets itself', () => {
    expect(headersProblem({ 'Herald-Topic': 'x' })?.field).toBe('headers.Herald-Topic');
    expect(headersProblem({ 'webhook-signature': 'x' })?.field).toBe('headers.webhook-signature');
    expect(headersProblem({ 'content-length': '1' })?.field).toBe('headers.content-length');
  });
  it('refuses header maps too large to store and send', () => {
    const big = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`x-h${i}`, 'v'.repeat(1000)]));
    expect(headersProblem(big)?.reason).toMatch(/16384 bytes/);
  });
  it('refuses the same name twice in different case', () => {
    expect(headersProblem({ 'x-a': '1', 'X-A': '2' })?.field).toBe('headers');
  });
});

describe('checkUrlProblem', () => {
  it('accepts http and https URLs', () => {
    expect(checkUrlProblem('https://orders.internal/herald/check')).toBeUndefined();
    expect(checkUrlProblem('http://127.0.0.1:8080/check?x=1')).toBeUndefined();
  });
  it('refuses other schemes, relative URLs and credentials', () => {
    expect(checkUrlProblem('ftp://host/x')?.reason).toMatch(/http/);
    expect(checkUrlProblem('/relative')?.reason).toMatch(/absolute/);
    expect(checkUrlProblem('https://user:pw@host/x')?.reason).toMatch(/credentials/);
  });
});

describe('resolveCheckPolicy', () => {
  it('fills what the producer left out from the defaults', () => {
    expect(resolveCheckPolicy({ maxChecks: 3 })).toEqual({ ...DEFAULT_CHECK_POLICY, maxChecks: 3 });
  });
});
