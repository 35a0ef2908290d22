import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

// Module boundaries: apps wire, libs work. `type:domain` is pure (no I/O), `type:contract`
// holds the HTTP schemas, `type:db` owns SQL. Only apps may depend on everything.
const ioPackages = [
  'fastify', 'fastify-*', '@fastify/*', 'bullmq', 'ioredis', 'drizzle-orm', 'drizzle-orm/*',
  'mysql2', 'mysql2/*', 'amqplib', 'undici', 'pino', 'prom-client',
  'node:fs', 'node:fs/*', 'node:net', 'node:http', 'node:https', 'node:child_process', 'fs', 'net', 'http', 'https',
];

export default [
  { ignores: ['**/dist', '**/node_modules', '**/.nx', 'bench/results'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mts', '**/*.mjs'],
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
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:domain', 'type:contract', 'type:db', 'type:delivery', 'type:queues'] },
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:domain', 'type:contract', 'type:db', 'type:delivery', 'type:queues', 'type:app'] },
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
    files: ['**/*.test.ts', 'tools/**/*.ts', 'scripts/**/*.ts', 'apps/*/build.mjs', 'apps/*/scripts/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
];
