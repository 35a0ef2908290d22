// Bundles the server and the workspace libs into dist/apps/server/main.js (npm packages stay
// external and come from node_modules), and copies the SQL migrations beside it.
import { build } from 'esbuild';
import { cp, rm } from 'node:fs/promises';

const out = 'dist/apps/server';
await rm(out, { recursive: true, force: true });
await build({
  entryPoints: ['apps/server/src/main.ts'],
  outfile: `${out}/main.js`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  packages: 'external',
  tsconfig: 'tsconfig.json',
  sourcemap: true,
  logLevel: 'warning',
});
await cp('libs/db/migrations', `${out}/migrations`, { recursive: true });
console.log(`built ${out}/main.js`);
