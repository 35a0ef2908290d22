import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import { CreateSubscriptionBody, PrepareMessageBody } from '@herald/contract';
import { buildApp } from '../src/app';
import { parseConfig } from '../src/config';
import { asAdmin, asProducer, createTestDatabase, prepareBody, testEnv } from './helpers';

// Property-based hostile input: generated requests, valid and invalid, against the real API and
// MariaDB. Every answer must be < 500, whatever is accepted must satisfy the contract schema, and
// the reference message and subscription stored first must come out unchanged.
// A validator of its own, compiled from the contract's JSON Schema, judges what the server accepted.
const contract = new Ajv({ discriminator: true, strict: false, allErrors: true });
addFormats.default(contract, ['uri', 'date-time']);
const validPrepare = contract.compile(PrepareMessageBody);
const validSubscription = contract.compile(CreateSubscriptionBody);

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let referenceMessage: unknown;
let referenceSubscription: { id: string };
let requests = 0;
let accepted = 0;

beforeAll(async () => {
  db = await createTestDatabase('prop');
  app = await buildApp(parseConfig(testEnv(db.url, { HERALD_MAX_BODY_BYTES: '65536' })), { logger: false, worker: false });
  await app.ready();
  await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: prepareBody('reference') });
  referenceMessage = (await app.inject({ url: '/v1/messages/reference', headers: asProducer })).json();
  referenceSubscription = (await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'ref', topic: 'ref.#', target: { type: 'webhook', url: 'https://hooks.example.com/ref' } } })).json();
});
afterAll(async () => {
  expect((await app.inject({ url: '/v1/messages/reference', headers: asProducer })).json()).toEqual(referenceMessage);
  const sub = await app.inject({ url: `/v1/subscriptions/${referenceSubscription.id}`, headers: asAdmin });
  expect(sub.json()).toMatchObject({ name: 'ref', topic: 'ref.#', enabled: true });
  console.log(`[hostile] ${requests} generated requests, ${accepted} accepted, 0 answered 5xx`);
  expect(requests).toBeGreaterThanOrEqual(10_000);
  await app.close();
  await db.drop();
});

async function send(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: string, headers: Record<string, string> = asProducer) {
  requests += 1;
  const res = await app.inject({ method, url, headers: { ...headers, ...(payload !== undefined && { 'content-type': 'application/json' }) }, payload });
  expect(res.statusCode, `${method} ${url} ${payload?.slice(0, 300)} → ${res.body.slice(0, 300)}`).toBeLessThan(500);
  if (res.statusCode < 300) accepted += 1;
  return res;
}

const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.constantFrom('', ' ', '.', '..', 'a.b', 'x'.repeat(129), 'y'.repeat(201), '\u0000', '\r\n', '🚀', '__proto__', 'constructor'));
const anyJson = fc.jsonValue({ maxDepth: 4 });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const id = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_:-]{1,128}$/), text, fc.integer(), fc.constant(null));
const topic = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_-]{1,20}(\.[A-Za-z0-9_-]{1,20}){0,3}$/), text, fc.integer());
const number = fc.oneof(fc.integer(), fc.integer({ min: -1, max: 700_000_000 }), fc.double(), fc.string(), fc.constant(null), fc.bigInt().map(String));
const url = fc.oneof(fc.webUrl(), text, fc.constantFrom('http://127.0.0.1/x', 'https://hooks.example.com/x', 'ftp://x/y', 'https://u:p@h/x'));
const headerMap = fc.oneof(fc.dictionary(fc.oneof(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), text), fc.oneof(fc.string(), text, fc.integer())), anyJson);

const prepareBodies = fc.record(
  {
    id,
    topic,
    payload: anyJson,
    key: fc.oneof(fc.string(), text),
    headers: headerMap,
    checkUrl: url,
    checkAfterMs: number,
    checkIntervalMs: number,
    maxChecks: number,
    onChecksExhausted: fc.oneof(fc.constantFrom('rollback', 'hold'), text),
    delayMs: number,
    confirm: fc.oneof(fc.boolean(), anyJson),
    extra: anyJson,
  },
  { requiredKeys: [] },
);

describe('hostile input, generated', () => {
  it('prepare: never 5xx, and whatever is accepted satisfies the contract', async () => {
    await fc.assert(
      fc.asyncProperty(prepareBodies, async (body) => {
        const res = await send('POST', '/v1/messages', JSON.stringify(body));
        if (res.statusCode === 201 || res.statusCode === 200) {
          expect(validPrepare(body), `${JSON.stringify(body)} ${JSON.stringify(validPrepare.errors)}`).toBe(true);
          expect(res.json().payload).toEqual(body.payload);
        }
      }),
      { numRuns: 4_000 },
    );
  }, 180_000);

  it('raw bodies: malformed, deep, duplicated keys, huge header maps: never 5xx', async () => {
    const deep = fc.integer({ min: 1, max: 5_000 }).map((n) => `{"topic":"a","confirm":true,"payload":${'['.repeat(n)}${']'.repeat(n)}}`);
    const dupKeys = fc.tuple(topic, topic).map(([a, b]) => `{"topic":${JSON.stringify(a)},"topic":${JSON.stringify(b)},"payload":1,"confirm":true}`);
    const manyHeaders = fc.integer({ min: 30, max: 2_000 }).map((n) => JSON.stringify({ topic: 'a', payload: 1, confirm: true, headers: Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-${i}`, 'v']) ) }));
    const raw = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), deep, dupKeys, manyHeaders, anyJson.map((v) => JSON.stringify(v)));
    await fc.assert(
      fc.asyncProperty(raw, async (body) => {
        await send('POST', '/v1/messages', body);
      }),
      { numRuns: 2_500 },
    );
  }, 180_000);

  it('paths and queries: never 5xx', async () => {
    const segment = fc.oneof(id.map(String), text).map((s) => encodeURIComponent(s));
    const call = fc.oneof(
      segment.map((s) => ['POST', `/v1/messages/${s}/confirm`] as const),
      segment.map((s) => ['POST', `/v1/messages/${s}/cancel`] as const),
      segment.map((s) => ['GET', `/v1/messages/${s}`] as const),
      segment.map((s) => ['GET', `/v1/messages/${s}/deliveries`] as const),
      fc.record({ status: maybe(text), topic: maybe(topic.map(String)), limit: maybe(number.map(String)), cursor: maybe(text), createdBefore: maybe(text) }).map(
        (q) => ['GET', `/v1/messages?${new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined) as Array<[string, string]>)}`] as const,
      ),
    );
    await fc.assert(
      fc.asyncProperty(call, async ([method, path]) => {
        await send(method, path);
      }),
      { numRuns: 2_500 },
    );
  }, 180_000);

  it('subscriptions: never 5xx, and whatever is accepted satisfies the contract', async () => {
    const target = fc.oneof(
      fc.record({ type: fc.constant('webhook'), url, headers: headerMap, timeoutMs: number }, { requiredKeys: ['type'] }),
      fc.record({ type: fc.constant('rabbitmq'), exchange: fc.oneof(fc.string(), text), routingKey: text }, { requiredKeys: ['type'] }),
      anyJson,
    );
    const body = fc.record({ name: fc.oneof(fc.string(), text), topic: fc.oneof(topic, fc.constantFrom('#', '*', 'a.*.#')), target, maxAttempts: number, backoff: fc.oneof(fc.record({ initialMs: number, maxMs: number }), anyJson), enabled: fc.oneof(fc.boolean(), anyJson) }, { requiredKeys: [] });
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        const res = await send('POST', '/v1/subscriptions', JSON.stringify(b), asAdmin);
        if (res.statusCode === 201) {
          expect(validSubscription(b), `${JSON.stringify(b)} ${JSON.stringify(validSubscription.errors)}`).toBe(true);
          await send('DELETE', `/v1/subscriptions/${res.json().id}`, undefined, asAdmin);
        }
        const patched = await send('PATCH', `/v1/subscriptions/${referenceSubscription.id}`, JSON.stringify({ ...b, name: 'ref', topic: 'ref.#', enabled: true, target: { type: 'webhook', url: 'https://hooks.example.com/ref' } }), asAdmin);
        expect(patched.statusCode).toBeLessThan(500);
      }),
      { numRuns: 1_200 },
    );
  }, 180_000);
});
