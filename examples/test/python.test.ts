import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HeraldClient } from '@herald/client';
import { startHerald, type RunningHerald } from '../shared/herald.process';

// The HTTP contract is enough: a Python producer with no Herald library against the real service.
const script = fileURLToPath(new URL('../python/herald_example.py', import.meta.url));
let herald: RunningHerald;

beforeAll(async () => {
  herald = await startHerald();
}, 60_000);
afterAll(async () => {
  await herald?.stop();
});

/** A check soon enough to see, late enough that a local commit of milliseconds comes first. */
const SOON = ['--check-after-ms', '2000'];

async function run(mode: string, extra: string[] = []) {
  const order = randomBytes(3).toString('hex');
  const { stdout } = await promisify(execFile)('python3', [script, '--herald', herald.url, '--token', herald.keys.producer, '--check-secret', herald.keys.checkSecret, '--order', order, '--mode', mode, ...extra], { timeout: 60_000 });
  const steps = stdout.trim().split('\n').map((l) => JSON.parse(l) as { step: string; id?: string; status?: string; checks?: string[]; ok?: boolean });
  const settled = steps.find((s) => s.step === 'settled')!;
  const message = await new HeraldClient({ baseUrl: herald.url, token: herald.keys.producer }).getMessage(settled.id!);
  return { steps: steps.map((s) => s.step), settled, message };
}

describe('Python example (standard library only)', () => {
  it('commit: prepare, local commit, confirm; no check-back', async () => {
    const { steps, settled, message } = await run('commit');
    expect(steps).toEqual(['prepared', 'local-commit', 'confirmed', 'settled']);
    expect(settled).toMatchObject({ status: 'confirmed', checks: [], ok: true });
    expect(message.checks).toBe(0);
  });

  it('commit mode whose local transaction fails: cancel, never confirm (no phantom event)', async () => {
    const { steps, settled, message } = await run('commit', ['--order-exists']);
    expect(steps).toEqual(['prepared', 'local-rollback', 'cancelled', 'settled']);
    expect(settled).toMatchObject({ status: 'cancelled', checks: [], ok: true });
    expect(message.status).toBe('cancelled');
  });

  it('rollback: the local transaction fails, cancel', async () => {
    const { steps, settled } = await run('rollback');
    expect(steps).toEqual(['prepared', 'local-rollback', 'cancelled', 'settled']);
    expect(settled).toMatchObject({ status: 'cancelled', ok: true });
  });

  it('crash after the local commit: Herald’s signed check-back is verified in Python and answered commit', async () => {
    const { settled, message } = await run('crash-after-commit', SOON);
    expect(settled).toMatchObject({ status: 'confirmed', checks: ['commit'], ok: true });
    expect(message.checkAttempts).toMatchObject([{ answer: 'commit', statusCode: 200 }]);
  });

  it('crash before the local commit: the check-back finds no barrier row and answers rollback', async () => {
    const { settled, message } = await run('crash-before-commit', SOON);
    expect(settled).toMatchObject({ status: 'cancelled', checks: ['rollback'], ok: true });
    expect(message.checkAttempts).toMatchObject([{ answer: 'rollback', statusCode: 200 }]);
  });
});
