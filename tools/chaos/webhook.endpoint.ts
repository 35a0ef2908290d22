import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Webhook } from 'standardwebhooks';

/** How a webhook endpoint misbehaves. `healthy` answers 200 at once. */
export type EndpointMode = 'healthy' | 'slow' | 'timeout' | 'reset' | 'flap' | 'broken';

/** What one endpoint saw, per message id. */
export interface Receipts {
  /** 2xx answers the endpoint finished writing, per message id (more than one = duplicate). */
  ok: Map<string, number>;
  /** Requests the endpoint failed on purpose (hung, reset, 500), per message id. */
  failed: Map<string, number>;
  /** Requests whose Standard Webhooks signature did not verify (answered 401, not counted as received). */
  forged: Map<string, number>;
  /** Requests whose `herald-tenant` is not the tenant their delivery id names (answered 400, not counted). */
  wrongTenant: Map<string, number>;
}

/** One request at an endpoint: its delivery id, when it arrived, when its 2xx was written (if it was). */
export interface Arrival {
  id: string;
  at: number;
  okAt?: number;
}

/** The tenant a delivery id names: `<tenant>/<id>`, or `default` for a bare id. */
export const tenantOfDeliveryId = (deliveryId: string) => (deliveryId.includes('/') ? deliveryId.slice(0, deliveryId.indexOf('/')) : 'default');

export interface FaultCounts {
  slow: number;
  timeout: number;
  reset: number;
  flapDown: number;
  /** ms from a failed attempt (hang or reset) to the same message's next 2xx on that endpoint. */
  retryLatencies: { timeout: number[]; reset: number[] };
  /** ms from the endpoint coming back up to its first 2xx. */
  flapRecoveries: number[];
}

/** The request body as text ('' if the request broke off). */
export const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(''));
  });

export const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

/** A real HTTP webhook endpoint with one failure mode, recording what it received. */
export class WebhookEndpoint {
  readonly receipts: Receipts = { ok: new Map(), failed: new Map(), forged: new Map(), wrongTenant: new Map() };
  /** Every authentic request in arrival order, and when it was answered 2xx: the per-key order check reads it. */
  readonly arrivals: Arrival[] = [];
  private verifier?: Webhook;
  private server: Server;
  private misbehaving = true;
  private down = false;
  private flapTimer?: NodeJS.Timeout;
  private backUpAt?: number;
  private readonly failedAt = new Map<string, { at: number; kind: 'timeout' | 'reset' }>();
  private readonly hanging = new Set<ServerResponse>();

  constructor(
    readonly name: string,
    readonly mode: EndpointMode,
    readonly port: number,
    private readonly counts: FaultCounts,
    private readonly rate = 0.15,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook/${this.name}`;
  }

  /** The subscription's signing secret: from now on only correctly signed requests count. */
  set secret(secret: string) {
    this.verifier = new Webhook(secret);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    if (this.mode === 'flap') this.scheduleFlap();
  }

  /** Faults end (the load is over): every endpoint but the broken one answers 200 from now on. */
  async settle(): Promise<void> {
    this.misbehaving = false;
    clearTimeout(this.flapTimer);
    if (this.down) await this.up();
    for (const res of this.hanging) res.destroy();
  }

  async close(): Promise<void> {
    this.misbehaving = false;
    clearTimeout(this.flapTimer);
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private scheduleFlap(): void {
    // Up for 3–6 s, then down (connections refused) for 1.5–3 s.
    this.flapTimer = setTimeout(async () => {
      if (!this.misbehaving) return;
      this.down = true;
      this.counts.flapDown++;
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.flapTimer = setTimeout(() => void this.up().then(() => this.misbehaving && this.scheduleFlap()), 1_500 + Math.random() * 1_500);
    }, 3_000 + Math.random() * 3_000);
  }

  private async up(): Promise<void> {
    for (;;) {
      const listening = await new Promise<boolean>((resolve) => {
        this.server.once('error', () => resolve(false));
        this.server.listen(this.port, '127.0.0.1', () => resolve(true));
      });
      this.server.removeAllListeners('error');
      if (listening) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    this.down = false;
    this.backUpAt = Date.now();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const id = String(req.headers['webhook-id'] ?? '');
    if (this.verifier) {
      try {
        this.verifier.verify(body, req.headers as Record<string, string>);
      } catch {
        bump(this.receipts.forged, id);
        res.writeHead(401).end('signature does not verify');
        return;
      }
    }
    if (req.headers['herald-tenant'] !== tenantOfDeliveryId(id)) {
      bump(this.receipts.wrongTenant, id);
      res.writeHead(400).end('herald-tenant does not match webhook-id');
      return;
    }
    const arrival: Arrival = { id, at: performance.now() };
    this.arrivals.push(arrival);
    const fault = this.misbehaving && Math.random() < this.rate;
    if (this.mode === 'broken') {
      bump(this.receipts.failed, id);
      res.writeHead(500).end('broken on purpose');
      return;
    }
    if (fault && this.mode === 'timeout') {
      // Never answer: Herald's per-attempt timeout has to end it.
      this.counts.timeout++;
      bump(this.receipts.failed, id);
      this.failedAt.set(id, { at: Date.now(), kind: 'timeout' });
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    if (fault && this.mode === 'reset') {
      this.counts.reset++;
      bump(this.receipts.failed, id);
      this.failedAt.set(id, { at: Date.now(), kind: 'reset' });
      req.socket.resetAndDestroy();
      return;
    }
    if (this.misbehaving && this.mode === 'slow') {
      this.counts.slow++;
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 800));
    }
    res.on('finish', () => {
      arrival.okAt = performance.now();
      bump(this.receipts.ok, id);
      const failed = this.failedAt.get(id);
      if (failed) {
        this.counts.retryLatencies[failed.kind].push(Date.now() - failed.at);
        this.failedAt.delete(id);
      }
      if (this.backUpAt !== undefined) {
        this.counts.flapRecoveries.push(Date.now() - this.backUpAt);
        this.backUpAt = undefined;
      }
    });
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  }
}
