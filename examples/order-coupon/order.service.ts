import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'mysql2/promise';
import { HeraldClient } from '@herald/client';
import { HeraldBarrier, ensureBarrierTable, handleCheck, mysql2Transactions, type FailureHooks } from '@herald/client/barrier';
import { say } from './log';

export const ORDER_PAID = 'order.paid';

/**
 * First check-back delay when the producer settles the message itself: far away, so a slow
 * moment on a busy machine cannot let a check beat the local commit.
 */
export const NO_CHECK_MS = 60_000;
/** First check-back delay in the scenarios that show one: soon, but well after a local commit of milliseconds. */
export const CHECK_SOON_MS = 1_500;

/** How the order service misbehaves for one payment. */
export interface PaymentFaults {
  hooks?: FailureHooks;
  /** Every confirm request is lost on the way (the client retries, then gives up). */
  loseConfirm?: boolean;
  /** The local transaction stays open after its update until Herald has checked back (a stuck or paused process). */
  stallUntilChecked?: boolean;
  /** Herald's first check-back delay (default {@link NO_CHECK_MS}). */
  checkAfterMs?: number;
}

/**
 * The producer: marks an order paid and tells the world through Herald, with the SDK's barrier
 * (no hand-written check-back logic). Its check endpoint answers from the barrier table.
 */
export class OrderService {
  private server!: Server;
  private checkUrl = '';
  /** Called once the check handler has answered for a message id. */
  private readonly onChecked = new Map<string, () => void>();

  constructor(
    private readonly pool: Pool,
    private readonly herald: { url: string; token: string; checkSecret: string },
  ) {}

  async start(): Promise<void> {
    await ensureBarrierTable(this.pool);
    await this.pool.query('CREATE TABLE IF NOT EXISTS orders (id VARCHAR(64) PRIMARY KEY, amount INT NOT NULL, status VARCHAR(16) NOT NULL)');
    const options = { pool: this.pool, secret: this.herald.checkSecret };
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        void handleCheck(options, req.headers, body).then(
          (reply) => {
            const { id, check } = JSON.parse(body.toString()) as { id: string; check: number };
            say('orders', `check-back #${check} for ${id}: ${'status' in reply.body ? `answered ${reply.body.status} (from the barrier table)` : `refused: ${reply.body.error}`}`);
            res.writeHead(reply.statusCode, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
            this.onChecked.get(id)?.();
            this.onChecked.delete(id);
          },
          () => res.writeHead(500).end(),
        );
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.checkUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/herald/check`;
  }

  async createOrder(id: string, amount: number): Promise<void> {
    await this.pool.query("INSERT INTO orders (id, amount, status) VALUES (?, ?, 'pending')", [id, amount]);
  }

  /** Marks the order paid and publishes `order.paid`, atomically. Resolves to the message id. */
  async pay(orderId: string, faults: PaymentFaults = {}): Promise<string> {
    const fetchThatLosesConfirms: typeof fetch = (input, init) => {
      if (String(input).endsWith('/confirm')) {
        say('orders', 'confirm request lost on the network');
        return Promise.reject(new TypeError('fetch failed'));
      }
      return fetch(input, init);
    };
    const client = new HeraldClient({ baseUrl: this.herald.url, token: this.herald.token, retry: { attempts: 3, initialDelayMs: 50 }, ...(faults.loseConfirm && { fetch: fetchThatLosesConfirms }) });
    let messageId = '';
    const capture = (hook?: (id: string) => void | Promise<void>) => async (id: string) => {
      messageId = id;
      await hook?.(id);
    };
    const hooks = { afterPrepare: capture(faults.hooks?.afterPrepare), beforeCommit: capture(faults.hooks?.beforeCommit), afterCommit: capture(faults.hooks?.afterCommit) };
    const barrier = new HeraldBarrier({ client, transactions: mysql2Transactions(this.pool), checkUrl: this.checkUrl, idPrefix: `${orderId}-`, hooks });
    try {
      const result = await barrier.transaction(
        { topic: ORDER_PAID, key: orderId, payload: { orderId }, checkAfterMs: faults.checkAfterMs ?? NO_CHECK_MS, checkIntervalMs: 300 },
        async (tx, id) => {
          say('orders', `prepared ${id}; local transaction: UPDATE orders SET status = 'paid' + barrier row`);
          const [update] = (await tx.query("UPDATE orders SET status = 'paid' WHERE id = ? AND status = 'pending'", [orderId])) as unknown as [{ affectedRows: number }];
          if (update.affectedRows !== 1) throw new Error(`order ${orderId} is not pending`);
          if (faults.stallUntilChecked) {
            say('orders', 'local transaction stalls, still open, until Herald checks back…');
            await new Promise<void>((resolve) => this.onChecked.set(id, resolve));
            say('orders', 'stall over: inserting the barrier row and committing');
          }
        },
      );
      say('orders', result.confirmed ? `committed locally and confirmed ${result.messageId}` : `committed locally; confirm failed — Herald will check back`);
      return result.messageId;
    } catch (err) {
      say('orders', `payment did not complete: ${(err as Error).message}`);
      if (!messageId) throw err;
      return messageId;
    }
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
