import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { asAdmin, buildTestApp, createTestDatabase, REDIS_URL, testPrefix } from './helpers';
import { Redis } from 'ioredis';

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const prefix = testPrefix();

beforeAll(async () => {
  db = await createTestDatabase('unauth');
  app = await buildTestApp(db.url, { HERALD_QUEUE_PREFIX: prefix, HERALD_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE: '5', HERALD_ROLE: 'api' });
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${prefix}:ratelimit:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

const from = (remoteAddress: string, authorization?: string) =>
  app.inject({ method: 'GET', url: '/v1/messages', remoteAddress, headers: authorization ? { authorization } : {} });

describe('requests without a valid token (never limited before: a new wrong token each time got 401 for ever)', () => {
  it('are limited per client address, with 429 and Retry-After, whatever token they guess', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await from('203.0.113.7', i % 2 ? `Bearer guess-${randomBytes(8).toString('hex')}` : undefined)).statusCode);
    expect(codes).toEqual([401, 401, 401, 401, 401, 429, 429]);
    const limited = await from('203.0.113.7', 'Bearer another-guess-000000000000');
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.json().message).toMatch(/without a valid token from this address/);
  });

  it('leave other addresses and valid tokens from the same address alone', async () => {
    expect((await from('203.0.113.8')).statusCode).toBe(401);
    expect((await from('203.0.113.7', asAdmin.authorization)).statusCode).toBe(200);
  });
});
