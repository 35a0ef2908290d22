import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { asAdmin, buildTestApp, createTestDatabase } from './helpers';

// The cap on subscriptions per topic pattern: every subscription adds one delivery to every
// matching message, so an unbounded number on one pattern multiplies the work of each publish.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let a: FastifyInstance;
let b: FastifyInstance;
const CAP = 3;

beforeAll(async () => {
  db = await createTestDatabase('cap');
  // Two replicas on one database: the cap must hold across processes, not per process.
  const env = { HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC: String(CAP), HERALD_ROLE: 'api' };
  [a, b] = await Promise.all([buildTestApp(db.url, env), buildTestApp(db.url, env)]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await db?.drop();
});

const topic = () => `cap.${randomBytes(4).toString('hex')}.#`;
const create = (app: FastifyInstance, pattern: string, name = 'cap') =>
  app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name, topic: pattern, target: { type: 'rabbitmq', exchange: 'cap.events' } } });

describe('subscriptions per topic pattern', () => {
  it(`allows ${CAP} on one pattern, then answers 409 naming the pattern and the cap`, async () => {
    const pattern = topic();
    for (let i = 0; i < CAP; i++) expect((await create(i % 2 ? a : b, pattern)).statusCode).toBe(201);
    const refused = await create(a, pattern);
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ statusCode: 409, error: 'Conflict', field: 'topic' });
    expect(refused.json().message).toBe(
      `topic pattern "${pattern}" already has ${CAP} subscriptions, the most allowed (HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC); delete one or use another pattern`,
    );
    // Another pattern has its own budget; deleting one frees a place.
    expect((await create(a, topic())).statusCode).toBe(201);
    const list = await a.inject({ url: '/v1/subscriptions?limit=100', headers: asAdmin });
    const mine = (list.json().items as Array<{ id: string; topic: string }>).filter((s) => s.topic === pattern);
    expect(mine).toHaveLength(CAP);
    expect((await a.inject({ method: 'DELETE', url: `/v1/subscriptions/${mine[0]!.id}`, headers: asAdmin })).statusCode).toBe(204);
    expect((await create(b, pattern)).statusCode).toBe(201);
  });

  it('refuses moving a subscription onto a full pattern, and allows patches that keep its pattern', async () => {
    const full = topic();
    for (let i = 0; i < CAP; i++) expect((await create(a, full)).statusCode).toBe(201);
    const other = await create(a, topic());
    const id = other.json().id as string;
    const moved = await a.inject({ method: 'PATCH', url: `/v1/subscriptions/${id}`, headers: asAdmin, payload: { topic: full } });
    expect(moved.statusCode).toBe(409);
    expect(moved.json().message).toContain(`topic pattern "${full}" already has ${CAP} subscriptions`);
    expect((await a.inject({ url: `/v1/subscriptions/${id}`, headers: asAdmin })).json().topic).not.toBe(full);
    // A subscription already on the full pattern may be renamed, or "moved" to the pattern it has.
    const [first] = (await a.inject({ url: '/v1/subscriptions?limit=100', headers: asAdmin })).json().items.filter((s: { topic: string }) => s.topic === full);
    expect((await b.inject({ method: 'PATCH', url: `/v1/subscriptions/${first.id}`, headers: asAdmin, payload: { name: 'renamed', topic: full } })).statusCode).toBe(200);
  });

  it('holds under concurrent creates on two replicas', async () => {
    const pattern = topic();
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => create(i % 2 ? a : b, pattern, `race-${i}`)));
    const codes = answers.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 201)).toHaveLength(CAP);
    expect(codes.filter((c) => c === 409)).toHaveLength(24 - CAP);
    const [rows] = await a.mysql.query('SELECT COUNT(*) AS n FROM subscriptions WHERE topic_pattern = ?', [pattern]);
    expect(Number((rows as Array<{ n: string }>)[0]?.n)).toBe(CAP);
  });
});
