import fp from 'fastify-plugin';
import { createDatabasePool, createDb, DeliveryRepository, MessageRepository, SubscriptionRepository } from '@herald/db';
import type { CheckPolicy } from '@herald/domain';
import type { Pool } from 'mysql2/promise';

declare module 'fastify' {
  interface FastifyInstance {
    mysql: Pool;
    messages: MessageRepository;
    subscriptions: SubscriptionRepository;
    deliveries: DeliveryRepository;
  }
}

export interface MysqlPluginOptions {
  url: string;
  poolSize: number;
  checkDefaults: CheckPolicy;
  checkIntervalCapMs: number;
}

/** The MySQL pool and the repositories on it. Creating the pool opens no connection yet. */
export const mysqlPlugin = fp<MysqlPluginOptions>(
  async (app, options) => {
    const pool = createDatabasePool({ url: options.url, connectionLimit: options.poolSize });
    const db = createDb(pool);
    const messages = new MessageRepository(db, {
      defaults: options.checkDefaults,
      checkIntervalCapMs: options.checkIntervalCapMs,
      onTransition: (from, to) => app.metrics.transitions.inc({ from, to }),
    });
    app.decorate('mysql', pool);
    app.decorate('messages', messages);
    app.decorate('subscriptions', new SubscriptionRepository(db));
    app.decorate('deliveries', new DeliveryRepository(db));
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
