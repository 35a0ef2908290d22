import fp from 'fastify-plugin';
import {
  AttemptRepository,
  AuditRepository,
  BlockedKeyRepository,
  CheckRepository,
  ClaimRepository,
  createDatabasePool,
  createDb,
  DeliveryRepository,
  MessageRepository,
  RateRepository,
  PurgeRepository,
  StatsRepository,
  SubscriptionRepository,
  type LeaseSlots,
  type OnWriteBatch,
} from '@herald/db';
import type { CheckPolicy } from '@herald/domain';
import type { Pool } from 'mysql2/promise';
import { loggable } from './errors';

declare module 'fastify' {
  interface FastifyInstance {
    mysql: Pool;
    messages: MessageRepository;
    checks: CheckRepository;
    subscriptions: SubscriptionRepository;
    deliveries: DeliveryRepository;
    claims: ClaimRepository;
    attempts: AttemptRepository;
    audit: AuditRepository;
    rates: RateRepository;
    purges: PurgeRepository;
    stats: StatsRepository;
    blockedKeys: BlockedKeyRepository;
  }
}

export interface MysqlPluginOptions {
  url: string;
  poolSize: number;
  checkDefaults: CheckPolicy;
  checkIntervalCapMs: number;
  /** In processes that send: confirms and direct publishes create deliveries due now leased to this process. */
  slots?: LeaseSlots;
}

/** The MySQL pool and the repositories on it. Creating the pool opens no connection yet. */
export const mysqlPlugin = fp<MysqlPluginOptions>(
  async (app, options) => {
    const pool = createDatabasePool({ url: options.url, connectionLimit: options.poolSize });
    const db = createDb(pool);
    // A batch that fell back is not an error (each write still got its own answer), but many of
    // them mean the group commit is not doing its job: counted, and logged at debug level.
    const onBatch: OnWriteBatch = (report) => {
      if (report.fallbacks.length === 0) return;
      for (const reason of report.fallbacks) app.metrics.writeBatchFallbacks.inc({ kind: report.kind, reason });
      app.log.debug({ kind: report.kind, size: report.size, fallbacks: report.fallbacks, ...(report.error !== undefined && { err: loggable(report.error) }) }, 'write batch fell back');
    };
    // Counted after the commit answered: a batch that committed but whose answer was lost
    // (the connection dropped during COMMIT) leaves its transitions uncounted.
    const onTransition = (from: string, to: string, tenant: string) => {
      app.metrics.transitions.inc({ from, to });
      // Storing is counted by tenant where it happens (herald_messages_stored_total).
      if (from !== 'new') app.metrics.tenants.decisions.inc(tenant, to);
    };
    app.decorate('mysql', pool);
    app.decorate('messages', new MessageRepository(db, { defaults: options.checkDefaults, onTransition, onBatch, slots: options.slots }));
    app.decorate('checks', new CheckRepository(db, { checkIntervalCapMs: options.checkIntervalCapMs, onTransition }));
    app.decorate('subscriptions', new SubscriptionRepository(db));
    app.decorate('deliveries', new DeliveryRepository(db));
    app.decorate('claims', new ClaimRepository(db, { onBatch }));
    app.decorate('attempts', new AttemptRepository(db, { onBatch }));
    app.decorate('audit', new AuditRepository(db));
    app.decorate('rates', new RateRepository(db));
    app.decorate('purges', new PurgeRepository(db));
    app.decorate('stats', new StatsRepository(db));
    app.decorate('blockedKeys', new BlockedKeyRepository(db));
    app.addHook('onClose', async () => {
      // A MySQL that stopped answering must not turn a clean shutdown into a failed one: every
      // 2xx was already committed, and the process exit drops the sockets anyway.
      try {
        await pool.end();
      } catch (error) {
        app.log.warn({ err: error }, 'closing the MySQL pool failed; its connections are dropped at exit');
      }
    });
  },
  { name: 'herald-mysql', dependencies: ['herald-metrics'] },
);
