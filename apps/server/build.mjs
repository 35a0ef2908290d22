// Bundles the server and the workspace libs into dist/apps/server/main.js (npm packages stay
// external and come from node_modules, except drizzle-orm: see below), and copies the SQL
// migrations beside it.
import { build } from 'esbuild';
import { cp, rm } from 'node:fs/promises';

// Node 24 copies a package's package.json `exports` into a fresh string each time it resolves or
// loads a module of that package. drizzle-orm's is 175 KiB and Herald loads 131 of its modules:
// ~190 MiB of garbage at start-up, which set the process's peak RSS (docs/performance.md, "Memory").
// The workspace libs (tsconfig paths) are bundled too.
const bundledPackages = /^(@herald|drizzle-orm)(\/|$)/;

/** Marks every bare import external (resolved from node_modules at run time) but bundledPackages. */
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (bundledPackages.test(args.path) ? undefined : { path: args.path, external: true }));
  },
};

const out = 'dist/apps/server';
await rm(out, { recursive: true, force: true });
await build({
  entryPoints: ['apps/server/src/main.ts'],
  outfile: `${out}/main.js`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  plugins: [externalPackages],
  tsconfig: 'tsconfig.json',
  sourcemap: true,
  logLevel: 'warning',
});
await cp('libs/db/migrations', `${out}/migrations`, { recursive: true });
console.log(`built ${out}/main.js`);
