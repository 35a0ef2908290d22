import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isReady, launchHerald, tail, waitReady, type HeraldChild } from '@herald/test-support';

/** One Herald process (from source, as the tests run it), restartable on the same port. */
export class HeraldReplica {
  private herald?: HeraldChild;
  private alive = false;
  readonly url: string;
  private readonly logFile: string;

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly env: Record<string, string>,
    dir: string,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.logFile = join(dir, `${name}.log`);
  }

  get isAlive(): boolean {
    return this.alive;
  }

  async start(): Promise<void> {
    const herald = launchHerald({ env: { NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(this.port), ...this.env }, logFile: this.logFile });
    this.herald = herald;
    void herald.exited.then(() => {
      if (this.herald === herald) this.alive = false;
    });
    try {
      await waitReady(herald, this.url, 60_000, 200);
    } catch (error) {
      throw new Error(`${this.name} did not become ready; see ${this.logFile}: ${(error as Error).message}`);
    }
    this.alive = true;
  }

  /** /readyz answers 200: MySQL, Redis (and RabbitMQ when used) reachable from this process. */
  ready(): Promise<boolean> {
    return isReady(this.url);
  }

  /** kill -9: no drain, no shutdown hook; in-flight jobs and requests are cut off. */
  async kill(): Promise<void> {
    const herald = this.herald;
    if (!herald?.running()) return;
    this.alive = false;
    await herald.kill();
  }

  killNow(): void {
    if (this.herald?.running()) this.herald.child.kill('SIGKILL');
  }

  /** Error-level (and worse) log lines, for the report: each one is worth a look. */
  errors(limit = 10): string[] {
    return this.log()
      .split('\n')
      .filter((line) => /"level":(50|60)/.test(line))
      .slice(0, limit)
      .map((line) => `${this.name}: ${line.slice(0, 400)}`);
  }

  tail(lines = 30): string {
    return tail(this.log(), lines);
  }

  private log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }
}
