import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { findProcess, startScriptNodeFlags } from './herald.process';

describe('startScriptNodeFlags', () => {
  it("reads the node flags of the repository's start script, so the benchmark runs Herald as the image does", () => {
    const start = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).scripts.start as string;
    const flags = startScriptNodeFlags(start);
    expect(start).toBe(['exec node', ...flags, 'dist/apps/server/main.js'].join(' '));
    expect(flags.every((f) => f.startsWith('--'))).toBe(true);
  });

  it('accepts a start script without flags and refuses one it cannot read, rather than measuring something else', () => {
    expect(startScriptNodeFlags('exec node dist/apps/server/main.js')).toEqual([]);
    expect(startScriptNodeFlags('exec node --a=1 --b dist/apps/server/main.js')).toEqual(['--a=1', '--b']);
    expect(() => startScriptNodeFlags('node dist/apps/server/main.js')).toThrow(/start script/);
    expect(() => startScriptNodeFlags('exec node -r x dist/apps/server/main.js')).toThrow(/start script/);
  });
});

describe('findProcess', () => {
  it('finds a running process by its command name, and answers undefined for a name nothing runs under', () => {
    const own = readFileSync('/proc/self/comm', 'utf8').trim();
    const pid = findProcess([own]);
    expect(pid).toBeTypeOf('number');
    expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe(own);
    expect(findProcess(['herald-no-such-process'])).toBeUndefined();
  });
});
