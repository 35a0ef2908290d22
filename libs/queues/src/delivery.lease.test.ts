import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnection, type Pool, type RowDataPacket } from 'mysql2/promise';
import { AttemptRepository, ClaimRepository, createDatabasePool, createDb, DeliveryRepository, LeaseSlots, MessageRepository, migrate, SubscriptionRepository } from '@herald/db';
import { WebhookSender, type RabbitPublisher } from '@herald/delivery';
import { DeliverProcessor } from './deliver.processor';
import { DeliveryDispatcher } from './delivery.dispatcher';
import type { DeliveryQueue } from './delivery.queue';

/** A message of the default tenant, where every message stored without a tenant lives. */
const def = (id: string) => ({ tenant: 'default', id });

/**
 * Deliveries a confirm batch leases to this process, against the real MariaDB: the lease they
 * are sent under must still cover the send when the batch was slow to commit, and what the send
 * uses must not be older than what the claim path would read.
 */
const server = process.env.HERALD_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const name = `herald_test_ql_${randomBytes(4).toString('hex')}`;
let pool: Pool;
let endpoint: Server;
let baseUrl: string;
/** Requests the endpoint received, by path, and the most it held at once. */
const received: string[] = [];
let open = 0;
let mostOpen = 0;
/** How long the endpoint takes to answer. */
const ANSWER_MS = 1_500;
/** The subscriptions' webhook timeout: their lease is this and the processor's 5 s margin. */
const TIMEOUT_MS = 2_000;

beforeAll(async () => {
  await migrate({ url: `${server}/${name}` });
  pool = createDatabasePool({ url: `${server}/${name}` });
  endpoint = createServer((req, res) => {
    received.push(req.url ?? '');
    open++;
    mostOpen = Math.max(mostOpen, open);
    req.resume();
    setTimeout(() => {
      open--;
      res.writeHead(204).end();
    }, ANSWER_MS);
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => endpoint?.close(resolve));
  await pool?.end();
  const c = await createConnection(server);
  await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
  await c.end();
});

/** A worker process as the server wires it: confirm batches lease deliveries in the slots its dispatcher runs them in. */
function workerProcess() {
  const db = createDb(pool);
  const timeouts = { webhookTimeoutMs: TIMEOUT_MS, amqpConfirmTimeoutMs: TIMEOUT_MS };
  const slots = new LeaseSlots(8, timeouts);
  const deliveries = new DeliveryRepository(db);
  const subscriptions = new SubscriptionRepository(db);
  const messages = new MessageRepository(db, { slots });
  const webhook = new WebhookSender({ allowPrivateUrls: true });
  const processor = new DeliverProcessor({
    claims: new ClaimRepository(db),
    attempts: new AttemptRepository(db),
    subscriptions,
    webhook,
    rabbit: {} as RabbitPublisher,
    timeouts,
  });
  const queued: number[] = [];
  const queue = { add: async (refs: Array<{ deliveryId: number }>) => void queued.push(...refs.map((r) => r.deliveryId)) } as unknown as DeliveryQueue;
  const dispatcher = new DeliveryDispatcher({ queue, sender: { processor, slots } });
  return { deliveries, subscriptions, messages, processor, dispatcher, slots, queued, webhook };
}

async function waitFor<T>(read: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    const value = await read();
    if (value !== undefined) return value;
  }
  throw new Error('timed out waiting');
}

describe('deliveries leased by a slow confirm batch', () => {
  it('are not sent on a lease that expires mid-send (a second sender could claim the attempt), nor to a subscription disabled while the batch waited', { timeout: 30_000 }, async () => {
    const herald = workerProcess();
    const subscribe = (path: string) =>
      herald.subscriptions.create({ name: path, topic: 'slow.paid', target: { type: 'webhook', url: `${baseUrl}${path}`, timeoutMs: TIMEOUT_MS } });
    const { subscription: kept } = await subscribe('/kept');
    const { subscription: disabled } = await subscribe('/disabled');
    const prepared = await herald.messages.prepare({ id: 'slow-1', topic: 'slow.paid', payload: { n: 1 }, checkUrl: 'http://x/c' });
    const { seq } = (await herald.messages.find(def('slow-1'))) ?? { seq: 0n };
    expect(prepared.kind).toBe('created');

    // Another transaction's uncommitted delivery row of the message makes the batch's deliveries
    // INSERT wait (the unique key's duplicate check): the batch commits that much later, as after
    // any long lock wait, a slow fsync, or a wait for a pooled connection.
    const holder = await pool.getConnection();
    const startedAt = Date.now();
    let confirming: ReturnType<typeof herald.messages.decide> | undefined;
    try {
      await holder.query('BEGIN');
      await holder.query(
        "INSERT INTO deliveries (message_seq, message_id, subscription_id, target_type, status, attempts, generation, next_attempt_at, created_at, updated_at) VALUES (?, 'slow-1', ?, 'webhook', 'pending', 0, 0, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
        [seq, kept.id],
      );
      confirming = herald.messages.decide(def('slow-1'), 'confirm');
      await waitFor(async () => {
        const [rows] = await pool.query<RowDataPacket[]>(
          "SELECT id FROM information_schema.processlist WHERE db = ? AND info LIKE 'insert into deliveries%' AND id <> CONNECTION_ID()",
          [name],
        );
        return rows.length > 0 ? rows : undefined;
      });
      // The batch has read the subscriptions and waits: one is disabled meanwhile (committed).
      await herald.subscriptions.update(disabled.id, { enabled: false });
      // The lease (now + timeout + 5 s) has 1 s left when the batch commits.
      await new Promise((r) => setTimeout(r, Math.max(0, startedAt + TIMEOUT_MS + 4_000 - Date.now())));
      await holder.query('ROLLBACK');
      const confirmed = await confirming;
      expect(confirmed).toMatchObject({ kind: 'applied' });
      // Both deliveries were leased to this process by the batch, and are run by its dispatcher.
      expect(confirmed?.kind === 'applied' && confirmed.fanOut.leased).toHaveLength(2);
      if (confirmed?.kind === 'applied') await herald.dispatcher.dispatch(confirmed.fanOut, 'slow-1');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }

    // What the reconciler and a queue worker of any replica do once the batch's lease is over,
    // while the inline send is still under way.
    await new Promise((r) => setTimeout(r, Math.max(0, startedAt + TIMEOUT_MS + 5_000 + 200 - Date.now())));
    const overdue = await herald.deliveries.overdue(10, 0);
    const others = await Promise.all(overdue.map((ref) => herald.processor.process(ref)));
    await herald.dispatcher.close();
    await herald.webhook.close();

    // One send of the attempt, not two at once; none to the subscription disabled before the commit.
    expect(received).toEqual(['/kept']);
    expect(mostOpen).toBe(1);
    expect(others.filter((o) => o.kind !== 'skipped')).toEqual([]);
    expect(herald.slots.inUse).toBe(0);
    expect(herald.queued).toEqual([]);
    const [rows] = await pool.query<RowDataPacket[]>('SELECT subscription_id, status, attempts, last_error FROM deliveries WHERE message_id = ? ORDER BY subscription_id', ['slow-1']);
    const bySub = new Map(rows.map((r) => [r.subscription_id as string, r]));
    expect(bySub.get(kept.id)).toMatchObject({ status: 'delivered', attempts: 1 });
    expect(bySub.get(disabled.id)).toMatchObject({ status: 'dead', attempts: 0 });
    expect(String(bySub.get(disabled.id)?.last_error)).toContain('subscription is disabled');
  });
});
