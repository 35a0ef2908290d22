import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processFromPidFile, startScriptNodeFlags } from './herald.process';

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

describe('processFromPidFile', () => {
  it('answers the pid a pid file names when that process runs here, and undefined otherwise', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-pid-'));
    try {
      const file = join(dir, 'x.pid');
      writeFileSync(file, `${process.pid}\n`);
      expect(processFromPidFile(file)).toBe(process.pid);
      expect(processFromPidFile(join(dir, 'missing.pid'))).toBeUndefined();
      writeFileSync(file, 'not a pid');
      expect(processFromPidFile(file)).toBeUndefined();
      // A pid no process has (above the kernel's pid_max).
      writeFileSync(file, '4194305');
      expect(processFromPidFile(file)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
