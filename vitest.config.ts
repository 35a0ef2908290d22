import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const lib = (name: string) => fileURLToPath(new URL(`./libs/${name}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@herald/domain': lib('domain'),
      '@herald/contract': lib('contract'),
      '@herald/db': lib('db'),
      '@herald/delivery': lib('delivery'),
      '@herald/queues': lib('queues'),
      // Sub-paths first: an alias matches by prefix.
      '@herald/client/barrier': fileURLToPath(new URL('./libs/client/src/barrier/index.ts', import.meta.url)),
      '@herald/client/consumer': fileURLToPath(new URL('./libs/client/src/consumer/index.ts', import.meta.url)),
      '@herald/client': lib('client'),
      '@herald/test-support': fileURLToPath(new URL('./tools/test-support/index.ts', import.meta.url)),
    },
  },
  test: {
    environment: 'node',
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Fails the run when a test leaves its Redis keys or databases behind.
    globalSetup: ['tools/test-support/vitest.global-setup.ts'],
  },
});
