import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

// Built into dist/apps/console and served by Herald at /console/ (apps/server/src/plugins/console.ts).
export default defineConfig({
  root: here('.'),
  base: '/console/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: here('../../dist/apps/console'),
    emptyOutDir: true,
    target: 'es2022',
    // No inline <script> or data: module: the page's CSP allows scripts from its own origin only.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
