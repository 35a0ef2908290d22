import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROUTES } from './routes';

const spec = parse(readFileSync(new URL('../../../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, { operationId?: string }>> };
const METHODS = new Set(['get', 'post', 'put', 'patch', 'delete']);

describe('client routes against openapi.yaml', () => {
  it('calls exactly the operations the service documents: same ids, methods and paths (a drifted route fails here)', () => {
    const documented = Object.entries(spec.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => METHODS.has(method))
        .map(([method, op]) => `${op.operationId} ${method.toUpperCase()} ${path}`),
    );
    const called = Object.entries(ROUTES).map(([operation, r]) => `${operation} ${r.method} ${r.path}`);
    expect(called.sort()).toEqual(documented.sort());
  });
});
