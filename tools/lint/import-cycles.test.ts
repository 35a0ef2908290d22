import { fileURLToPath } from 'node:url';
import { parseCircular, parseDependencyTree } from 'dpdm';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

// A module that imports one that imports it back cannot be read, tested or changed on its own;
// the lint's module boundaries catch cycles between libs, this catches them inside one.
describe('imports', () => {
  it('form no cycle in any app, lib or tool', async () => {
    const tree = await parseDependencyTree(['apps/*/src/**/*.ts', 'libs/*/src/**/*.ts', 'tools/**/*.ts'], {
      context: root,
      tsconfig: `${root}tsconfig.base.json`,
      transform: false,
      skipDynamicImports: false,
      include: /\.ts$/,
      exclude: /node_modules|\/dist\//,
    });
    const files = Object.keys(tree).filter((f) => !f.includes('node_modules'));
    // The tree must hold the code it judges, or an empty glob would pass.
    expect(files.some((f) => f.startsWith('libs/db/src/'))).toBe(true);
    expect(parseCircular(tree).map((cycle) => cycle.join(' -> '))).toEqual([]);
  }, 120_000);
});
