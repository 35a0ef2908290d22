import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// Lints code as if it were written in a given lib, so the module boundaries are shown to be
// enforced by the committed config rather than assumed.
const eslint = new ESLint({ cwd: new URL('../..', import.meta.url).pathname });

async function boundaryErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === '@nx/enforce-module-boundaries' || m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('module boundaries', () => {
  it('keeps the domain lib free of I/O packages', async () => {
    for (const pkg of ['fastify', '@fastify/swagger', 'bullmq', 'ioredis', 'drizzle-orm', 'drizzle-orm/mysql-core', 'mysql2/promise', 'amqplib', 'undici', 'node:fs']) {
      const errors = await boundaryErrors('libs/domain/src/probe.ts', `import * as x from '${pkg}';\nexport const y = x;\n`);
      expect(errors.length, pkg).toBeGreaterThan(0);
    }
  });

  it('keeps the test-support project out of what the server ships and out of the libs', async () => {
    const probe = "import { waitFor } from '@herald/test-support';\nexport const y = waitFor;\n";
    expect(await boundaryErrors('apps/server/src/probe.ts', probe)).not.toEqual([]);
    expect(await boundaryErrors('libs/db/src/probe.ts', probe)).not.toEqual([]);
    expect(await boundaryErrors('apps/server/test/probe.test.ts', probe)).toEqual([]);
  });

  it('keeps the domain lib from depending on any other lib', async () => {
    expect(await boundaryErrors('libs/domain/src/probe.ts', "import { messages } from '@herald/db';\nexport const y = messages;\n")).not.toEqual([]);
  });

  it('keeps the contract lib from depending on the db lib', async () => {
    expect(await boundaryErrors('libs/contract/src/probe.ts', "import { messages } from '@herald/db';\nexport const y = messages;\n")).not.toEqual([]);
  });

  it('keeps the db lib away from HTTP', async () => {
    expect(await boundaryErrors('libs/db/src/probe.ts', "import Fastify from 'fastify';\nexport const y = Fastify;\n")).not.toEqual([]);
  });

  it('keeps the client SDK free of drivers, servers and every lib but the contract', async () => {
    for (const pkg of ['mysql2/promise', 'drizzle-orm', 'fastify', 'amqplib', 'undici', 'ioredis', 'bullmq', 'standardwebhooks', '@herald/db', '@herald/domain']) {
      const errors = await boundaryErrors('libs/client/src/probe.ts', `import * as x from '${pkg}';\nexport const y = x;\n`);
      expect(errors.length, pkg).toBeGreaterThan(0);
    }
    expect(await boundaryErrors('libs/client/src/probe.ts', "import type { Message } from '@herald/contract';\nimport { createHmac } from 'node:crypto';\nexport type M = Message;\nexport const h = createHmac;\n")).toEqual([]);
  });

  it('lets the examples use the SDK, not the service internals', async () => {
    expect(await boundaryErrors('examples/order-coupon/probe.ts', "import { HeraldClient } from '@herald/client';\nexport const y = HeraldClient;\n")).toEqual([]);
    expect(await boundaryErrors('examples/order-coupon/probe.ts', "import { messages } from '@herald/db';\nexport const y = messages;\n")).not.toEqual([]);
  });

  it('keeps the OpenTelemetry SDK in the app: libs may use @opentelemetry/api only, the domain not even that', async () => {
    for (const lib of ['db', 'delivery', 'queues']) {
      expect(await boundaryErrors(`libs/${lib}/src/probe.ts`, "import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';\nexport const y = BasicTracerProvider;\n"), lib).not.toEqual([]);
      expect(await boundaryErrors(`libs/${lib}/src/probe.ts`, "import { trace } from '@opentelemetry/api';\nexport const y = trace;\n"), lib).toEqual([]);
    }
    expect(await boundaryErrors('libs/domain/src/probe.ts', "import { trace } from '@opentelemetry/api';\nexport const y = trace;\n")).not.toEqual([]);
    expect(await boundaryErrors('apps/server/src/probe.ts', "import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';\nexport const y = BasicTracerProvider;\n")).toEqual([]);
  });

  it('allows what the layering intends', async () => {
    expect(await boundaryErrors('libs/db/src/probe.ts', "import { decide } from '@herald/domain';\nexport const y = decide;\n")).toEqual([]);
    expect(await boundaryErrors('apps/server/src/probe.ts', "import { migrate } from '@herald/db';\nexport const y = migrate;\n")).toEqual([]);
  });
});
