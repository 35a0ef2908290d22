import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Runs the demo exactly as `npm run demo` does (its own Herald process, databases and queue) and
// holds it to its own consistency check in every failure mode.
describe('npm run demo', () => {
  it('every scenario ends consistent across the orders, coupons and points databases and Herald', async () => {
    // Its own process group, so the demo and the Herald process it starts can be killed together.
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/order-coupon/demo.ts', '--all'], { cwd: ROOT, env: { ...process.env, FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    // Stop a hung demo before the test's own timeout, so its output is still reported.
    const watchdog = setTimeout(killGroup, 150_000);
    let code: number | null;
    try {
      code = await exited;
    } finally {
      clearTimeout(watchdog);
      // Whatever happened, leave nothing running: the demo, or a Herald it started.
      killGroup();
    }
    expect(code, out).toBe(0);
    const verdicts = out.split('\n').filter((l) => /^demo\s+[✔✘] /.test(l));
    expect(verdicts.map((l) => l.split(/\s+/)[2]), out).toEqual(['happy', 'crash-after-prepare', 'crash-after-commit', 'slow-transaction', 'lost-confirm', 'consumer-down', 'duplicate']);
    expect(verdicts.every((l) => l.includes('✔')), out).toBe(true);
    // Each consumer lost one acknowledgement, so each saw the message at least twice.
    expect(Number(/consistent: .*\((\d+) duplicate deliveries absorbed\)/.exec(out)?.[1]), out).toBeGreaterThanOrEqual(2);
    expect(out).toContain('check-back #1 → rollback');
    expect(out).toContain('check-back #1 → commit');
  }, 180_000);
});
