import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { bump, readBody } from './webhook.endpoint';

export type CheckAnswer = 'commit' | 'rollback' | 'unknown';

/** A check call the endpoint refused: not signed with its tenant's secret, or naming another tenant. */
export interface RefusedCheck {
  tenant: string;
  id: string;
  reason: string;
}

/**
 * The producers' check-back endpoint, one path per tenant (`/check/<tenant>`), as each team runs
 * its own: a call must be signed with that tenant's check secret and carry its `herald-tenant`,
 * else it is refused (401) and recorded; a valid one is answered from that tenant's record of
 * the truth.
 */
export class CheckEndpoint {
  /** Per tenant: calls that verified, by message id. */
  readonly calls = new Map<string, Map<string, number>>();
  readonly refused: RefusedCheck[] = [];
  private readonly server: Server;
  private readonly verifiers: Map<string, Webhook>;

  constructor(
    readonly port: number,
    /** Each tenant's check secret (whsec_…). */
    secrets: ReadonlyMap<string, string>,
    private readonly answer: (tenant: string, id: string, check: number) => CheckAnswer,
    /** Share of calls answered 500 (Herald must count them as unknown). */
    private readonly errorRate = 0.03,
  ) {
    this.verifiers = new Map([...secrets].map(([tenant, secret]) => [tenant, new Webhook(secret)]));
    for (const tenant of secrets.keys()) this.calls.set(tenant, new Map());
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  urlFor(tenant: string): string {
    return `http://127.0.0.1:${this.port}/check/${tenant}`;
  }

  start = () => new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req);
    const tenant = /^\/check\/([a-z0-9_-]+)$/.exec(req.url ?? '')?.[1] ?? '';
    const verifier = this.verifiers.get(tenant);
    let body: { id?: string; check?: number } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // answered 400 below
    }
    if (!verifier || typeof body.id !== 'string') return void res.writeHead(400).end();
    const refuse = (reason: string) => {
      this.refused.push({ tenant, id: String(body.id), reason });
      res.writeHead(401).end(reason);
    };
    try {
      verifier.verify(text, req.headers as Record<string, string>);
    } catch {
      return refuse('signature does not verify with the tenant’s check secret');
    }
    if (req.headers['herald-tenant'] !== tenant) return refuse(`herald-tenant is ${String(req.headers['herald-tenant'])}`);
    bump(this.calls.get(tenant)!, body.id);
    if (Math.random() < this.errorRate) return void res.writeHead(500).end('producer hiccup');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: this.answer(tenant, body.id, body.check ?? 0) }));
  }
}
