import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

// Module boundaries: apps wire, libs work. `type:domain` is pure (no I/O), `type:contract`
// holds the HTTP schemas, `type:db` owns SQL. Only apps may depend on everything.
const ioPackages = [
  'fastify', 'fastify-*', '@fastify/*', 'bullmq', 'ioredis', 'drizzle-orm', 'drizzle-orm/*',
  'mysql2', 'mysql2/*', 'amqplib', 'undici', 'pino', 'prom-client',
  'node:fs', 'node:fs/*', 'node:net', 'node:http', 'node:https', 'node:child_process', 'fs', 'net', 'http', 'https',
];

// Everything a published SDK must not pull in: servers, queues, ORMs and drivers (the SDK talks to
// the producer's database through a structural interface, so mysql2 and drizzle stay the user's).
const clientBanned = ioPackages.filter((p) => !p.startsWith('node:') && !['fs', 'net', 'http', 'https'].includes(p));
// Its shipped code (not its tests) also stays off the dev-only helpers and every other lib.
const clientSrcBanned = [...clientBanned, 'standardwebhooks', 'yaml', '@herald/domain', '@herald/db', '@herald/delivery', '@herald/queues'];

export default [
  { ignores: ['**/dist', '**/node_modules', '**/.nx', 'bench/results'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.mts', '**/*.mjs'],
    plugins: { '@nx': nx },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: 'type:domain', onlyDependOnLibsWithTags: [], bannedExternalImports: ioPackages },
            { sourceTag: 'type:contract', onlyDependOnLibsWithTags: ['type:domain'], bannedExternalImports: ioPackages },
            { sourceTag: 'type:db', onlyDependOnLibsWithTags: ['type:domain'], bannedExternalImports: ['fastify', 'fastify-*', '@fastify/*', 'bullmq', 'amqplib', 'undici'] },
            { sourceTag: 'type:delivery', onlyDependOnLibsWithTags: ['type:domain'], bannedExternalImports: ['fastify', 'fastify-*', '@fastify/*', 'bullmq', 'drizzle-orm', 'drizzle-orm/*', 'mysql2', 'mysql2/*'] },
            { sourceTag: 'type:queues', onlyDependOnLibsWithTags: ['type:domain', 'type:db', 'type:delivery'], bannedExternalImports: ['fastify', 'fastify-*', '@fastify/*'] },
            // The SDK ships to other services: the contract's types and Node built-ins only.
            { sourceTag: 'type:client', onlyDependOnLibsWithTags: ['type:contract'], bannedExternalImports: clientBanned },
            { sourceTag: 'type:example', onlyDependOnLibsWithTags: ['type:client', 'type:test-support'] },
            // The console is a client of the public API only: its own generated types, its UI library and fetch client.
            {
              sourceTag: 'type:console',
              onlyDependOnLibsWithTags: [],
              allowedExternalImports: ['preact', 'preact/*', 'openapi-fetch', 'vite', 'vitest', 'openapi-typescript', 'node:*'],
            },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:domain', 'type:contract', 'type:db', 'type:delivery', 'type:queues', 'type:test-support'] },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:domain', 'type:contract', 'type:db', 'type:delivery', 'type:queues', 'type:app', 'type:test-support'] },
            // Process launchers, sinks and private servers for tests, examples and tools: no Herald code.
            { sourceTag: 'type:test-support', onlyDependOnLibsWithTags: [] },
          ],
        },
      ],
    },
  },
  {
    // The same ban without the project graph, so it also holds for packages not installed yet.
    files: ['libs/domain/**/*.ts', 'libs/contract/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: [...ioPackages, '@opentelemetry/*'], message: 'domain and contract libs do no I/O (and no tracing)' }] }],
    },
  },
  {
    // Tracing: libs see @opentelemetry/api only (a no-op until an SDK is registered); the app
    // owns the SDK and the exporter (apps/server/src/plugins/tracing.ts).
    files: ['libs/db/**/*.ts', 'libs/delivery/**/*.ts', 'libs/queues/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@opentelemetry/*', '!@opentelemetry/api'], message: 'libs use @opentelemetry/api only; the app wires the SDK' }] }],
    },
  },
  {
    // The same for the SDK's shipped code, so it holds without the project graph too.
    files: ['libs/client/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: clientSrcBanned, message: 'the client SDK depends on @herald/contract (types) and Node built-ins only' }] }],
    },
  },
  {
    // The console runs in the browser: no Node built-ins in what it ships.
    files: ['apps/console/src/**/*.ts', 'apps/console/src/**/*.tsx'],
    ignores: ['**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', '@herald/*'], message: 'the console ships to browsers and reads Herald through its HTTP API only' }] }] },
  },
  {
    // Apps may use the test-support project from their tests only, never from what ships.
    files: ['apps/*/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['@herald/test-support'], message: 'test support is for tests, tools and examples' }] }],
    },
  },
  {
    files: ['**/*.test.ts', 'tools/**/*.ts', 'scripts/**/*.ts', 'apps/*/build.mjs', 'apps/*/scripts/**/*.ts', 'libs/*/build.mjs', 'examples/**/*.ts', 'examples/**/*.mjs'],
    rules: { 'no-console': 'off' },
  },
];
