import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'mysql2/promise';
import { createWebhookHandler, ensureInboxTable, mysql2Transactions } from '@herald/client/consumer';
import { say } from './log';

/**
 * A webhook consumer: grants one coupon per paid order. The SDK verifies Herald's signature and
 * records the message id in the inbox table in the same transaction as the coupon.
 */
export class CouponService {
  private server!: Server;
  private secret = '';
  /** Until then the service is "down": it answers 503. */
  downUntil = 0;
  /** Message ids whose first answer is lost after the coupon was committed. */
  readonly loseAnswerOnce = new Set<string>();
  duplicatesIgnored = 0;

  constructor(private readonly pool: Pool) {}

  async start(): Promise<string> {
    await ensureInboxTable(this.pool);
    await this.pool.query('CREATE TABLE IF NOT EXISTS coupons (order_id VARCHAR(64) NOT NULL, message_id VARCHAR(128) NOT NULL, amount INT NOT NULL, PRIMARY KEY (order_id, message_id))');
    const onDuplicate = (event: { id: string; attempt: number }) => {
      this.duplicatesIgnored++;
      say('coupons', `${event.id} arrived again (attempt ${event.attempt}): already in the inbox, ignored`);
    };
    const handler = createWebhookHandler({ secret: () => this.secret, transactions: mysql2Transactions(this.pool), consumer: 'coupons', onDuplicate }, async (tx, event) => {
      const { orderId } = event.payload as { orderId: string };
      await tx.query('INSERT INTO coupons (order_id, message_id, amount) VALUES (?, ?, 500)', [orderId, event.id]);
      say('coupons', `granted a coupon for ${orderId} (attempt ${event.attempt})`);
    });
    this.server = createServer((req, res) => this.handle(req, res, handler));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks/herald`;
  }

  useSecret(secret: string): void {
    this.secret = secret;
  }

  private handle(req: IncomingMessage, res: ServerResponse, handler: (req: IncomingMessage, res: ServerResponse) => void): void {
    const id = String(req.headers['webhook-id']);
    if (Date.now() < this.downUntil) {
      say('coupons', `down: answered 503 to ${id} (attempt ${req.headers['herald-attempt']})`);
      req.resume();
      res.writeHead(503).end();
      return;
    }
    const end = res.end.bind(res);
    // A "lost" answer is a dropped connection after the coupon is already committed: exactly a
    // crash between the commit and the 200.
    res.end = ((chunk?: unknown) => {
      if (this.loseAnswerOnce.delete(id)) {
        say('coupons', `committed, but the 200 for ${id} is lost (connection dropped)`);
        req.socket.destroy();
        return res;
      }
      return end(chunk as string);
    }) as typeof res.end;
    handler(req, res);
  }

  async coupons(orderId: string): Promise<number> {
    const [rows] = (await this.pool.query('SELECT COUNT(*) AS n FROM coupons WHERE order_id = ?', [orderId])) as unknown as [Array<{ n: number }>];
    return Number(rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
