import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A free TCP port below the kernel's ephemeral range (32768+), so a port a service gives up while
 * it restarts cannot be taken meanwhile by some outgoing connection's local port.
 */
export async function freePort(taken: Set<number> = new Set()): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port)) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (ok) {
      taken.add(port);
      return port;
    }
  }
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function waitForPort(port: number, what: string, timeoutMs: number, exited?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await portOpen(port))) {
    if (exited?.()) throw new Error(`${what} exited before opening port ${port}`);
    if (Date.now() > deadline) throw new Error(`${what} did not open port ${port} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** A foreground child process whose output goes to a log file; killed with the run. */
class Daemon {
  child?: ChildProcess;
  private exited = true;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly logFile: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  start(): void {
    const out = openSync(this.logFile, 'a');
    this.child = spawn(this.command, this.args, { stdio: ['ignore', out, out], env: this.env });
    this.exited = false;
    this.child.on('exit', () => (this.exited = true));
  }

  hasExited = () => this.exited;

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || this.exited) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  /** For the exit handler: synchronous, best effort. */
  killNow(): void {
    if (this.child && !this.exited) this.child.kill('SIGKILL');
  }
}

/** A MariaDB server of the run's own, on a data directory under `dir`. */
export class PrivateMariaDb {
  readonly url: string;
  private readonly daemon: Daemon;

  private constructor(
    private readonly dir: string,
    readonly port: number,
  ) {
    this.url = `mysql://root@127.0.0.1:${port}`;
    this.daemon = new Daemon('mariadb', '/usr/sbin/mariadbd', [
      '--no-defaults',
      `--datadir=${join(dir, 'data')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mariadb.sock')}`,
      `--pid-file=${join(dir, 'mariadb.pid')}`,
      '--user=root',
      // A private, throwaway server reached only from this machine: no accounts to set up.
      '--skip-grant-tables',
      '--skip-log-bin',
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=128M',
      '--innodb-flush-log-at-trx-commit=1',
      '--max-connections=500',
    ], join(dir, 'mariadb.log'));
  }

  static async create(dir: string, port: number): Promise<PrivateMariaDb> {
    mkdirSync(join(dir, 'data'), { recursive: true });
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${join(dir, 'data')}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db']);
    const db = new PrivateMariaDb(dir, port);
    await db.start();
    return db;
  }

  async start(): Promise<void> {
    this.daemon.start();
    await waitForPort(this.port, 'mariadbd', 60_000, this.daemon.hasExited);
  }

  /** kill -9: whatever InnoDB committed must survive it (crash recovery on the next start). */
  kill = () => this.daemon.kill();
  killNow = () => this.daemon.killNow();
}

/** A Redis of the run's own: no persistence, so a restart comes back empty. */
export class PrivateRedis {
  readonly url: string;
  private readonly daemon: Daemon;

  constructor(dir: string, readonly port: number) {
    this.url = `redis://127.0.0.1:${port}`;
    this.daemon = new Daemon('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], join(dir, 'redis.log'));
  }

  async start(): Promise<void> {
    this.daemon.start();
    await waitForPort(this.port, 'redis-server', 20_000, this.daemon.hasExited);
  }

  kill = () => this.daemon.kill();
  killNow = () => this.daemon.killNow();
}

/**
 * A RabbitMQ node of the run's own (its own node name, ports, data and Erlang cookie). It is
 * started with the scripts under /usr/lib/rabbitmq/bin as the current user, so neither the
 * system node's configuration nor its cookie is used.
 */
export class PrivateRabbitMq {
  readonly url: string;
  readonly node: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly pidFile: string;

  constructor(dir: string, readonly port: number, distPort: number, nodePrefix = 'chaos') {
    this.node = `${nodePrefix}${port}@localhost`;
    this.url = `amqp://guest:guest@127.0.0.1:${port}`;
    this.pidFile = join(dir, 'rabbitmq.pid');
    mkdirSync(join(dir, 'home'), { recursive: true });
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
    this.env = {
      PATH: process.env.PATH,
      HOME: join(dir, 'home'),
      RABBITMQ_NODENAME: this.node,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(port),
      RABBITMQ_DIST_PORT: String(distPort),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_PID_FILE: this.pidFile,
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
    };
  }

  private ctl(...args: string[]) {
    return run('/usr/lib/rabbitmq/bin/rabbitmqctl', ['-q', '-n', this.node, ...args], { env: this.env, timeout: 90_000 });
  }

  async start(): Promise<void> {
    await run('/usr/lib/rabbitmq/bin/rabbitmq-server', ['-detached'], { env: this.env });
    await this.ctl('wait', this.pidFile, '--timeout', '90');
    await waitForPort(this.port, 'rabbitmq', 30_000);
  }

  stopApp = async () => void (await this.ctl('stop_app'));
  startApp = async () => {
    await this.ctl('start_app');
    await waitForPort(this.port, 'rabbitmq', 30_000);
  };

  async stop(): Promise<void> {
    await this.ctl('stop').catch(() => this.killNow());
  }

  killNow(): void {
    try {
      const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // never started, or already gone
    }
  }
}
