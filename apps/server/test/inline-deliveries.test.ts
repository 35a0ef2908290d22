import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { Queue } from 'bullmq';
import { DELIVERY_QUEUE } from '@herald/queues';
import { asAdmin, asProducer, buildTestApp, createTestDatabase, REDIS_URL, testPrefix } from './helpers';
import { startWebhookSink, waitFor } from '@herald/test-support';

/**
 * HERALD_INLINE_DELIVERIES decides whether a delivery due now is sent by the process that
 * committed it or by a BullMQ job. The endpoint holds its answer, so the send is caught while
 * it is under way and the queue can be asked whether it carries it.
 */
let sink: Awaited<ReturnType<typeof startWebhookSink>>;
const held: ServerResponse[] = [];

beforeAll(async () => {
  sink = await startWebhookSink((_hit, res) => void held.push(res));
});
afterAll(async () => {
  await sink?.close();
});

/** Publishes one message to a fresh webhook subscription; returns once its send reached the endpoint. */
async function sendUnderWay(app: FastifyInstance): Promise<string> {
  const topic = `inline.${randomBytes(4).toString('hex')}`;
  const sub = await app.inject({ method: 'POST', url: '/v1/subscriptions', headers: asAdmin, payload: { name: 'inline', topic, target: { type: 'webhook', url: sink.url('/inline') } } });
  expect(sub.statusCode, sub.body).toBe(201);
  const id = `inl-${randomBytes(4).toString('hex')}`;
  const res = await app.inject({ method: 'POST', url: '/v1/messages', headers: asProducer, payload: { id, topic, payload: {}, confirm: true } });
  expect(res.statusCode, res.body).toBe(201);
  await waitFor(async () => sink.hitsFor(id).length === 1, 'the send reached the endpoint');
  return id;
}

/** Answers the held sends and waits until the message is delivered. */
async function finish(app: FastifyInstance, id: string): Promise<void> {
  for (const res of held.splice(0)) res.writeHead(200).end('ok');
  await waitFor(async () => (await app.inject({ url: `/v1/messages/${id}`, headers: asProducer })).json().status === 'delivered', 'delivered');
}

const queuedJobs = async (prefix: string) => {
  const queue = new Queue(DELIVERY_QUEUE, { connection: { url: REDIS_URL }, prefix });
  try {
    const counts = await queue.getJobCounts('active', 'waiting', 'delayed', 'prioritized');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  } finally {
    await queue.close();
  }
};

describe('HERALD_INLINE_DELIVERIES', () => {
  it.each([
    ['by default, sends a delivery due now from the committing process, with no job in the queue', {}, 0],
    ['at 0, sends every delivery through the queue', { HERALD_INLINE_DELIVERIES: '0' }, 1],
  ] as const)('%s', async (_, env, jobs) => {
    const db = await createTestDatabase('inl');
    const prefix = testPrefix();
    const app = await buildTestApp(db.url, { ...env, HERALD_QUEUE_PREFIX: prefix });
    try {
      const id = await sendUnderWay(app);
      expect(await queuedJobs(prefix)).toBe(jobs);
      await finish(app, id);
    } finally {
      for (const res of held.splice(0)) res.destroy();
      await app.close();
      await db.drop();
    }
  });
});
