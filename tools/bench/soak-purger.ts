/**
 * Herald's purger (the worker's own Purger and PurgeRepository) in a process of its own, switched
 * on and off by the soak that forked it, so one run measures Herald with and without it.
 * Messages from the parent: 'on', 'off', 'exit'; to the parent: { purged } after each batch, and
 * { catchUp } after the first run of each 'on' window.
 */
import { createDatabasePool, createDb, PurgeRepository } from '@herald/db';
import { Purger, type PurgerOptions } from '@herald/queues';

const config = JSON.parse(process.argv[2] ?? '{}') as { url: string; retentionMs: number; intervalMs: number; maxPerSecond?: number; options?: Partial<PurgerOptions> };
const pool = createDatabasePool({ url: config.url, connectionLimit: 4 });
const purges = new PurgeRepository(createDb(pool));
let purger: Purger | undefined;
let first: Promise<unknown> | undefined;

const send = (message: object) => process.send?.(message);

async function on(): Promise<void> {
  if (purger) return;
  // A stopped Purger stays stopped: each window gets a new one, which runs at once, then every interval.
  const p = new Purger(purges, {
    intervalMs: config.intervalMs,
    retention: { delivered: config.retentionMs, cancelled: config.retentionMs, failed: 0 },
    ...(config.maxPerSecond !== undefined && { maxPerSecond: config.maxPerSecond }),
    ...config.options,
    onPurged: (counts) => send({ purged: counts.messages }),
    log: { warn: (obj, msg) => process.stderr.write(`soak purger: ${msg} ${JSON.stringify(obj)}\n`) },
  });
  purger = p;
  const startedAt = performance.now();
  // Its timer starts once this first run ends, so two runs (each with the cap) never overlap.
  first = p
    .run()
    // The first run removes what the "off" window left: the rate of a purge with a backlog.
    .then((counts) => send({ catchUp: { messages: counts.messages, ms: performance.now() - startedAt } }))
    .catch((err: Error) => process.stderr.write(`soak purger: ${err.message}\n`))
    .finally(() => {
      if (purger === p) p.start();
    });
}

async function off(): Promise<void> {
  const p = purger;
  purger = undefined;
  await p?.stop();
  await first;
}

process.on('message', (message) => {
  const done = message === 'on' ? on() : off();
  void done.then(async () => {
    if (message === 'exit') {
      await pool.end();
      process.exit(0);
    }
    send({ ack: message });
  });
});
send({ ready: true });
