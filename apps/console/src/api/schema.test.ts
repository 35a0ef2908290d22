import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import openapiTS, { astToString } from 'openapi-typescript';

// The console's types are generated from openapi.yaml, never written by hand: a route changed
// without regenerating them (`npx nx run console:types`) fails here.
describe('the console’s API types', () => {
  it('are exactly what openapi-typescript makes of openapi.yaml', async () => {
    const spec = new URL('../../../../openapi.yaml', import.meta.url);
    const generated = astToString(await openapiTS(spec));
    const committed = await readFile(new URL('./schema.d.ts', import.meta.url), 'utf8');
    const body = (text: string) => text.slice(text.indexOf('export interface paths'));
    expect(body(committed)).toBe(body(generated));
  });
});
