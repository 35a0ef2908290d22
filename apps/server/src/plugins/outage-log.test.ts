import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FastifyBaseLogger } from 'fastify';
import { outageLog } from './outage-log';

type Logged = { level: 'warn' | 'info'; fields: Record<string, unknown>; msg: string };

function memoryLog(lines: Logged[]): FastifyBaseLogger {
  const at = (level: Logged['level']) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, fields, msg });
  return { warn: at('warn'), info: at('info') } as unknown as FastifyBaseLogger;
}

describe('outageLog', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') }));
  afterEach(() => vi.useRealTimers());

  it('logs the first failure, then at most one line per interval, then one line on recovery', () => {
    const lines: Logged[] = [];
    const outage = outageLog(memoryLog(lines), 'redis connection error', { queue: 'q' }, 10_000);
    // 100 reconnect attempts, 100 ms apart: 10 s of outage.
    for (let i = 0; i < 100; i++) {
      outage.failed(new Error('connect ECONNREFUSED'));
      vi.advanceTimersByTime(100);
    }
    outage.failed(new Error('connect ECONNREFUSED'));
    expect(lines).toEqual([
      { level: 'warn', fields: { queue: 'q', err: { message: 'connect ECONNREFUSED' } }, msg: 'redis connection error' },
      { level: 'warn', fields: { queue: 'q', err: { message: 'connect ECONNREFUSED' }, failuresSinceLastLine: 100 }, msg: 'redis connection error (still failing)' },
    ]);
    outage.recovered();
    outage.recovered();
    expect(lines.slice(2)).toEqual([{ level: 'info', fields: { queue: 'q' }, msg: 'redis connection error: recovered' }]);
    // The next outage is logged at once again.
    outage.failed(new Error('again'));
    expect(lines.at(-1)).toMatchObject({ level: 'warn', msg: 'redis connection error', fields: { err: { message: 'again' } } });
  });

  it('says nothing on a ready that follows no failure (the first connect)', () => {
    const lines: Logged[] = [];
    outageLog(memoryLog(lines), 'x').recovered();
    expect(lines).toEqual([]);
  });
});
