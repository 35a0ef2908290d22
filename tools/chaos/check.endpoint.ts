import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { bump, readBody } from './webhook.endpoint';

export type CheckAnswer = 'commit' | 'rollback' | 'unknown';

/** The producer's check-back endpoint: answers from the load generator's record of the truth. */
export class CheckEndpoint {
  readonly calls = new Map<string, number>();
  private readonly server: Server;

  constructor(
    readonly port: number,
    private readonly answer: (id: string, check: number) => CheckAnswer,
    /** Share of calls answered 500 (Herald must count them as unknown). */
    private readonly errorRate = 0.03,
  ) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/check`;
  }

  start = () => new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const text = await readBody(req);
    let body: { id?: string; check?: number } = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      // answered 400 below
    }
    if (typeof body.id !== 'string') return void res.writeHead(400).end();
    bump(this.calls, body.id);
    if (Math.random() < this.errorRate) return void res.writeHead(500).end('producer hiccup');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: this.answer(body.id, body.check ?? 0) }));
  }
}
