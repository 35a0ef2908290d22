import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { parse } from 'yaml';
import { buildTestApp, createTestDatabase, metricValue } from './helpers';

// Read here from the file, not through the server's own import, so the plumbing itself is tested.
const RELEASE = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

let app: FastifyInstance;
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('ver');
  app = await buildTestApp(db.url);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

describe('the release version, from package.json', () => {
  it('/healthz names it, so an operator sees which release a pod runs during a rollout', async () => {
    const res = await app.inject({ url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', version: RELEASE });
  });

  it('/metrics carries herald_build_info{version} = 1, so dashboards can tell releases apart', async () => {
    const text = (await app.inject({ url: '/metrics' })).body;
    expect(text).toContain('# TYPE herald_build_info gauge');
    expect(metricValue(text, `herald_build_info{version="${RELEASE}"}`)).toBe(1);
    expect(text.match(/^herald_build_info\{/gm)).toHaveLength(1);
  });

  it('is the OpenAPI info.version, served and in openapi.yaml (a release does not leave the spec behind)', async () => {
    const served = (await app.inject({ url: '/docs/json' })).json();
    expect(served.info.version).toBe(RELEASE);
    expect(served.paths['/healthz'].get.responses['200'].content['application/json'].schema.required).toEqual(['status', 'version']);
    const committed = parse(readFileSync(new URL('../../../openapi.yaml', import.meta.url), 'utf8'));
    expect(committed.info.version).toBe(RELEASE);
  });
});
