import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** One Herald process (from source, as the tests run it), restartable on the same port. */
export class HeraldReplica {
  private child?: ChildProcess;
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
    const out = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/server/src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(this.port), ...this.env },
      stdio: ['ignore', out, out],
    });
    this.child = child;
    let exited = false;
    child.once('exit', () => {
      exited = true;
      if (this.child === child) this.alive = false;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited) throw new Error(`${this.name} exited during start-up; see ${this.logFile}:\n${this.tail()}`);
      if (await this.ready()) break;
      if (Date.now() > deadline) throw new Error(`${this.name} not ready within 60 s; see ${this.logFile}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    this.alive = true;
  }

  /** /readyz answers 200: MySQL, Redis (and RabbitMQ when used) reachable from this process. */
  async ready(): Promise<boolean> {
    try {
      const res = await request(`${this.url}/readyz`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /** kill -9: no drain, no shutdown hook; in-flight jobs and requests are cut off. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.alive = false;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  killNow(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** Error-level (and worse) log lines, for the report: each one is worth a look. */
  errors(limit = 10): string[] {
    try {
      return readFileSync(this.logFile, 'utf8')
        .split('\n')
        .filter((line) => /"level":(50|60)/.test(line))
        .slice(0, limit)
        .map((line) => `${this.name}: ${line.slice(0, 400)}`);
    } catch {
      return [];
    }
  }

  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}
