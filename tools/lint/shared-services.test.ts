import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// MariaDB, Redis and RabbitMQ on their standard ports are shared by everyone on the machine: a
// test that stops, restarts or empties them breaks every other run. Only the private-instance
// module may stop or wipe a server, and only the servers it started itself.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PRIVATE_INSTANCES = 'tools/test-support/private.services.ts';
// scripts/services.sh starts the shared servers when they are down (and never stops them).
const STARTS_SHARED = 'scripts/services.sh';
const THIS_FILE = 'tools/lint/shared-services.test.ts';

const destructive: Array<[string, RegExp]> = [
  ['rabbitmqctl', /\brabbitmqctl\b/],
  ['stop_app', /['"`]stop_app['"`]/],
  ['FLUSHALL / FLUSHDB', /\bflush(all|db)\b/i],
  ['redis SHUTDOWN', /\b\w*redis\w*\.shutdown\s*\(|call\(\s*['"`]shutdown\b|redis-cli[^\n]*\bshutdown\b/i],
  ['SQL SHUTDOWN', /\bSHUTDOWN\s*(['"`;]|WAIT\b)/],
  ['mysqladmin shutdown', /mysqladmin[^\n]*\bshutdown\b/],
  ['CLIENT KILL', /\bclient\s+kill\b/i],
  ['systemctl / service stop or restart', /\b(systemctl\s+(stop|restart|kill)|service\s+\S+\s+(stop|restart))\b/],
  ['pkill / killall', /\b(pkill|killall)\b/],
  ['start-stop-daemon --stop', /start-stop-daemon[^\n]*--stop\b/],
];
const serverBinaries: [string, RegExp] = ['a database, cache or broker server binary', /\b(mariadbd|mysqld|redis-server|rabbitmq-server)\b/];

/** Each rule a piece of test or tool source breaks, as `rule: line`. */
export function sharedServiceViolations(path: string, text: string): string[] {
  if (path === PRIVATE_INSTANCES || path === THIS_FILE) return [];
  const rules = path === STARTS_SHARED ? destructive : [...destructive, serverBinaries];
  const found: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const [rule, pattern] of rules) if (pattern.test(line)) found.push(`${path}:${i + 1} ${rule}: ${line.trim()}`);
  });
  return found;
}

const SCANNED = /\.(ts|mts|mjs|js|sh|py)$/;
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.nx')) continue;
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sources(full));
    else if (SCANNED.test(name) || dir.endsWith('/.ci')) out.push(full);
  }
  return out;
}

/** Tests (every *.test.ts and the server's test folder), tools, examples, scripts and CI. */
function testAndToolSources(): string[] {
  const everywhere = ['apps', 'libs', 'deploy'].flatMap((d) => sources(join(ROOT, d))).filter((f) => f.endsWith('.test.ts') || /\/apps\/[^/]+\/test\//.test(f));
  const whole = ['tools', 'examples', 'scripts', '.ci'].flatMap((d) => sources(join(ROOT, d)));
  return [...everywhere, ...whole].map((f) => relative(ROOT, f));
}

describe('tests and tools leave the shared services alone', () => {
  it('finds the destructive commands it looks for', () => {
    const bad = [
      "await run('rabbitmqctl', ['stop_app']);",
      'await redis.flushall();',
      'await redis.shutdown();',
      "await redis.call('FLUSHDB');",
      'execSync("redis-cli -p 6379 shutdown nosave")',
      "await conn.query('SHUTDOWN');",
      'sudo systemctl restart redis-server',
      'pkill -f mariadbd',
      "spawn('redis-server', ['--port', '6379'])",
    ];
    for (const line of bad) expect(sharedServiceViolations('apps/server/test/probe.test.ts', line), line).not.toEqual([]);
    // Words in names and log lines are not commands.
    for (const line of ["expect(output).toContain('shutdown complete');", 'HERALD_SHUTDOWN_TIMEOUT_MS: 5000', 'server.shutdown()', "it('survives a redis restart')"]) {
      expect(sharedServiceViolations('apps/server/test/probe.test.ts', line), line).toEqual([]);
    }
  });

  it('only the private-instance module stops, restarts or empties a server', () => {
    const files = testAndToolSources();
    expect(files).toContain('apps/server/test/delivery.faults.test.ts');
    expect(files).toContain('tools/chaos/fault.injector.ts');
    const violations = files.flatMap((f) => sharedServiceViolations(f, readFileSync(join(ROOT, f), 'utf8')));
    expect(violations).toEqual([]);
  });
});
