import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

// The package as it would be published: built, then loaded from dist by its package.json exports.
const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; import: string } | string>; dependencies?: object };

beforeAll(() => {
  execFileSync(process.execPath, [join(root, 'build.mjs')], { cwd: root, stdio: 'pipe' });
}, 60_000);

describe('the built package', () => {
  it('has no runtime dependencies and every export path exists and loads', async () => {
    expect(pkg.dependencies).toBeUndefined();
    const loaded: Record<string, string[]> = {};
    for (const [path, target] of Object.entries(pkg.exports)) {
      if (typeof target === 'string') continue;
      readFileSync(join(root, target.types));
      loaded[path] = Object.keys(await import(pathToFileURL(join(root, target.import)).href));
    }
    expect(loaded['.']).toEqual(expect.arrayContaining(['HeraldClient', 'HeraldApiError', 'ROUTES', 'verifyWebhook']));
    expect(loaded['./barrier']).toEqual(expect.arrayContaining(['HeraldBarrier', 'createCheckHandler', 'heraldCheckPlugin', 'mysql2Transactions', 'drizzleTransactions', 'barrierTableSql']));
    expect(loaded['./consumer']).toEqual(expect.arrayContaining(['processOnce', 'createWebhookHandler', 'consumeOnce', 'verifyWebhook', 'inboxTableSql']));
  });

  it('imports only Node built-ins at run time, and its declarations name no workspace or schema package', () => {
    const files = readdirSync(join(root, 'dist'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'));
    for (const file of files) {
      const text = readFileSync(join(root, 'dist', file), 'utf8');
      const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!);
      const foreign = specifiers.filter((s) => !s.startsWith('.') && !s.startsWith('node:'));
      expect(foreign, file).toEqual([]);
    }
    const types = readFileSync(join(root, 'dist/types/libs/client/src/types.d.ts'), 'utf8');
    expect(types).toMatch(/export type HeraldMessage = \{/);
    expect(types).toContain('"prepared" | "confirmed"');
  });
});
