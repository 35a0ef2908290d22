// `npm run demo`: an order service marks orders paid and, through Herald, a coupon service
// (webhook) and a points service (RabbitMQ) each act exactly once — through every failure window.
// Starts its own Herald process, databases and queue, prints each step, checks that the three
// databases agree, and cleans up. `npm run demo -- --mode <name>` runs one scenario.
import { randomBytes } from 'node:crypto';
import { HeraldClient, type HeraldMessage } from '@herald/client';
import { AMQP_URL, createDatabase, startHerald, waitFor, type RunningHerald } from '../shared/herald.process';
import { CouponService } from './coupon.service';
import { CHECK_SOON_MS, ORDER_PAID, OrderService, type PaymentFaults } from './order.service';
import { PointsService } from './points.service';
import { say } from './log';

interface World {
  herald: RunningHerald;
  /** Subscription id → name, for the narration. */
  names: Map<string, string>;
  admin: HeraldClient;
  orders: OrderService;
  coupons: CouponService;
  points: PointsService;
}

interface Scenario {
  name: string;
  title: string;
  /** Whether the order ends paid (and so gets one coupon and one points credit) or not. */
  paid: boolean;
  run: (world: World, orderId: string) => Promise<string>;
}

const crash = (where: string) => () => {
  say('orders', `💥 process crashes ${where}`);
  throw new Error(`simulated crash ${where}`);
};

export const SCENARIOS: Scenario[] = [
  {
    name: 'happy',
    title: 'Happy path: prepare, local commit, confirm',
    paid: true,
    run: (w, id) => w.orders.pay(id),
  },
  {
    name: 'crash-after-prepare',
    title: 'Producer crashes after prepare, before its local transaction: check-back rolls back',
    paid: false,
    run: (w, id) => w.orders.pay(id, { hooks: { afterPrepare: crash('after prepare') }, checkAfterMs: CHECK_SOON_MS }),
  },
  {
    name: 'crash-after-commit',
    title: 'Producer crashes after its local commit, before confirm: check-back commits',
    paid: true,
    run: (w, id) => w.orders.pay(id, { hooks: { afterCommit: crash('after the local commit') }, checkAfterMs: CHECK_SOON_MS }),
  },
  {
    name: 'slow-transaction',
    title: 'The local transaction is still open when Herald checks back: the check wins, the late commit fails',
    paid: false,
    run: (w, id) => w.orders.pay(id, { stallUntilChecked: true, checkAfterMs: CHECK_SOON_MS }),
  },
  {
    name: 'lost-confirm',
    title: 'The confirm is lost on the network (every retry): check-back commits',
    paid: true,
    run: (w, id) => w.orders.pay(id, { loseConfirm: true, checkAfterMs: CHECK_SOON_MS } satisfies PaymentFaults),
  },
  {
    name: 'consumer-down',
    title: 'Both consumers are down for 2 s: Herald retries the webhook, RabbitMQ holds the message',
    paid: true,
    run: async (w, id) => {
      w.coupons.downUntil = Date.now() + 2_000;
      await w.points.pause();
      setTimeout(() => void w.points.resume().then(() => say('points', 'back up, consuming')), 2_000);
      return w.orders.pay(id);
    },
  },
  {
    name: 'duplicate',
    title: 'Each consumer commits but its acknowledgement is lost: the message comes twice, the inbox dedupes',
    paid: true,
    run: async (w, id) => {
      // The message id is known only once prepared; arm the faults for ids of this order.
      const arm = (messageId: string) => {
        w.coupons.loseAnswerOnce.add(messageId);
        w.points.loseAckOnce.add(messageId);
      };
      return w.orders.pay(id, { hooks: { beforeCommit: arm } });
    },
  },
];

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const modeIndex = args.indexOf('--mode');
  const only = modeIndex >= 0 ? args[modeIndex + 1] : undefined;
  const scenarios = only ? SCENARIOS.filter((s) => s.name === only) : SCENARIOS;
  if (scenarios.length === 0) {
    console.error(`unknown mode ${only}; one of: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return 2;
  }

  say('demo', 'starting Herald (its own database and queue prefix) and three services with their own databases');
  const herald = await startHerald();
  const dbs = await Promise.all(['orders', 'coupons', 'points'].map((n) => createDatabase(n)));
  const [ordersDb, couponsDb, pointsDb] = dbs as [typeof dbs[0], typeof dbs[0], typeof dbs[0]];
  const exchange = `demo.${randomBytes(3).toString('hex')}`;
  const world: World = {
    herald,
    names: new Map(),
    admin: new HeraldClient({ baseUrl: herald.url, token: herald.keys.admin }),
    orders: new OrderService(ordersDb.pool, { url: herald.url, token: herald.keys.producer, checkSecret: herald.keys.checkSecret }),
    coupons: new CouponService(couponsDb.pool),
    points: new PointsService(pointsDb.pool, AMQP_URL, exchange),
  };
  let failures = 0;
  try {
    await world.orders.start();
    const hookUrl = await world.coupons.start();
    await world.points.start();
    const backoff = { initialMs: 250, maxMs: 1_000 };
    const sub = await world.admin.createSubscription({ name: 'coupons', topic: ORDER_PAID, target: { type: 'webhook', url: hookUrl }, backoff });
    world.coupons.useSecret(sub.secret ?? '');
    world.names.set(sub.id, 'coupons');
    const pointsSub = await world.admin.createSubscription({ name: 'points', topic: ORDER_PAID, target: { type: 'rabbitmq', exchange }, backoff });
    world.names.set(pointsSub.id, 'points');
    say('demo', `Herald at ${herald.url}; subscriptions: coupons (webhook), points (RabbitMQ exchange ${exchange})`);

    const outcomes: Array<{ scenario: Scenario; orderId: string; messageId: string }> = [];
    for (const scenario of scenarios) {
      const orderId = `order-${scenario.name}-${randomBytes(2).toString('hex')}`;
      console.log('');
      say('demo', `── ${scenario.name}: ${scenario.title}`);
      await world.orders.createOrder(orderId, 4200);
      const messageId = await scenario.run(world, orderId);
      const message = await settle(world, scenario, orderId, messageId);
      narrate(message, world.names);
      outcomes.push({ scenario, orderId, messageId });
    }

    console.log('');
    say('demo', '── consistency check across the orders, coupons and points databases and Herald');
    for (const { scenario, orderId, messageId } of outcomes) {
      const [rows] = (await ordersDb.pool.query('SELECT status FROM orders WHERE id = ?', [orderId])) as unknown as [Array<{ status: string }>];
      const status = rows[0]?.status;
      const coupons = await world.coupons.coupons(orderId);
      const points = await world.points.points(orderId);
      const message = await world.admin.getMessage(messageId);
      const want = scenario.paid ? { status: 'paid', n: 1, message: 'delivered' } : { status: 'pending', n: 0, message: 'cancelled' };
      const ok = status === want.status && coupons === want.n && points === want.n && message.status === want.message;
      if (!ok) failures++;
      say('demo', `${ok ? '✔' : '✘'} ${scenario.name.padEnd(20)} order ${status?.padEnd(7)} coupons ${coupons}  points ${points}  message ${message.status}`);
    }
    const dupes = world.coupons.duplicatesIgnored + world.points.duplicatesIgnored;
    if (scenarios.some((s) => s.name === 'duplicate') && dupes < 2) {
      failures++;
      say('demo', `✘ expected both consumers to receive a duplicate; ${dupes} seen`);
    }
    console.log('');
    say('demo', failures === 0 ? `consistent: every paid order has exactly one coupon and one points credit, every unpaid none (${dupes} duplicate deliveries absorbed)` : `INCONSISTENT in ${failures} place(s)`);
  } finally {
    await world.points.close().catch(() => undefined);
    await world.coupons.close().catch(() => undefined);
    await world.orders.close().catch(() => undefined);
    await herald.stop();
    await Promise.all(dbs.map((d) => d.drop()));
  }
  return failures === 0 ? 0 : 1;
}

/** Waits until Herald has decided the message and, if paid, both consumers have acted. */
async function settle(world: World, scenario: Scenario, orderId: string, messageId: string): Promise<HeraldMessage> {
  const final = scenario.paid ? 'delivered' : 'cancelled';
  const message = await waitFor(async () => {
    const m = await world.admin.getMessage(messageId);
    return m.status === final ? m : undefined;
  }, `message ${messageId} ${final}`, 30_000);
  if (scenario.paid) {
    await waitFor(async () => (await world.coupons.coupons(orderId)) === 1 && (await world.points.points(orderId)) === 1, `consumers to act on ${orderId}`, 30_000);
  }
  if (scenario.name === 'duplicate') {
    await waitFor(() => world.coupons.duplicatesIgnored > 0 && world.points.duplicatesIgnored > 0, 'both duplicates to arrive', 30_000);
  }
  // Let anything else already on its way arrive before the check.
  await new Promise((r) => setTimeout(r, 200));
  return message;
}

function narrate(message: HeraldMessage, names: Map<string, string>): void {
  for (const c of message.checkAttempts ?? []) say('herald', `check-back #${c.check} → ${c.answer}${c.error ? ` (${c.error})` : ''}`);
  say('herald', `message ${message.id}: ${message.status}${message.status === 'cancelled' ? ', nothing is delivered' : ''}`);
  for (const d of message.deliveries) {
    say('herald', `  to ${names.get(d.subscriptionId) ?? d.subscriptionId}: ${d.status} after ${d.attempts} attempt(s)${d.lastError ? ` (last error: ${d.lastError})` : ''}`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
