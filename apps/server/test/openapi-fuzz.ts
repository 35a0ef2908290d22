import fc from 'fast-check';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { fullFormats } from 'ajv-formats/dist/formats.js';

/**
 * Requests generated from openapi.yaml itself: every operation, every path and query parameter
 * and every body, optional ones included, valid and invalid, built from the schemas the document
 * publishes. An independent judge compiled from the same document says which ones are valid.
 */
export type Schema = Record<string, unknown> & {
  $ref?: string;
  type?: string;
  enum?: unknown[];
  const?: unknown;
  oneOf?: Schema[];
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  minProperties?: number;
  maxProperties?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
};

export interface Parameter { name: string; in: 'path' | 'query' | 'header'; required?: boolean; schema: Schema }
export interface Operation {
  method: string;
  path: string;
  security?: unknown[];
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}
export interface Document { paths: Record<string, Record<string, Omit<Operation, 'method' | 'path'>>>; components: { schemas: Record<string, Schema> } }

/** JSON text that JSON.stringify cannot write: a number no double holds, like 1e400. */
export class RawJson {
  constructor(readonly text: string) {}
}

export function jsonText(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** An object with an own, enumerable `__proto__` key, as JSON.parse would build it. */
function withKey(object: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const copy = { ...object };
  Object.defineProperty(copy, key, { value, enumerable: true, configurable: true, writable: true });
  return copy;
}

export const INVALID_DATE_TIMES = [
  '2026-12-31T23:59:60Z', // a leap second: RFC 3339 allows it, a JavaScript Date cannot hold it
  '2026-06-30T23:59:60+00:00',
  '2026-02-30T00:00:00Z',
  '2026-13-01T00:00:00Z',
  '2026-12-31T24:00:00Z',
  '2026-12-31 10:00:00',
  '2026-12-31',
  '31/12/2026',
  'yesterday',
  '0000-00-00T00:00:00Z',
  '+275760-09-13T00:00:00.001Z',
];
const HUGE_NUMBERS = ['1e400', '-1e400', '1E+999', '123456789e999'];

export function arbitraries(doc: Document) {
  const resolve = (schema: Schema): Schema => {
    let s = schema;
    while (s.$ref) s = doc.components.schemas[s.$ref.replace('#/components/schemas/', '')] ?? {};
    return s;
  };
  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const huge = fc.constantFrom(...HUGE_NUMBERS).map((t) => new RawJson(t));
  const wrongType = fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, '', 'x', '1', [], {}, [1], { a: 1 });
  const badText = fc.constantFrom(' ', '.', '..', 'a b', 'a\u0000b', '\r\n', 'é', '🚀', '<x>', '../..', '%00', '__proto__', 'constructor');

  function valid(schema: Schema): fc.Arbitrary<unknown> {
    const s = resolve(schema);
    if (s.enum) return fc.constantFrom(...s.enum);
    if (s.const !== undefined) return fc.constant(s.const);
    const branches = s.oneOf ?? s.anyOf;
    if (branches) return fc.oneof(...branches.map(valid));
    switch (s.type) {
      case 'string': {
        const min = s.minLength ?? 0;
        const max = s.maxLength ?? 64;
        const fits = (v: string) => v.length >= min && v.length <= max;
        if (s.format === 'date-time') {
          const date = fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true });
          return fc.oneof(date.map((d) => d.toISOString()), date.map((d) => d.toISOString().replace(/\.\d{3}Z$/, '+02:00')), date.map((d) => d.toISOString().replace('.000Z', 'Z')));
        }
        if (s.format === 'uri') {
          return fc.oneof(
            fc.webUrl({ validSchemes: ['http', 'https'], withQueryParameters: true }).filter(fits),
            fc.constantFrom('https://hooks.example.com/x', 'http://127.0.0.1:9/herald/check', 'HTTPS://EXAMPLE.COM/A?b=c'),
          );
        }
        if (s.pattern) return fc.stringMatching(new RegExp(s.pattern)).filter(fits);
        return fc.string({ minLength: min, maxLength: Math.min(max, 64) });
      }
      case 'integer': {
        const min = s.minimum ?? -1_000_000_000;
        const max = s.maximum ?? 1_000_000_000;
        return fc.oneof(fc.integer({ min, max }), fc.constantFrom(min, max));
      }
      case 'number':
        return fc.double({ min: s.minimum, max: s.maximum, noNaN: true, noDefaultInfinity: true });
      case 'boolean':
        return fc.boolean();
      case 'null':
        return fc.constant(null);
      case 'object': {
        const properties = s.properties ?? {};
        let object: fc.Arbitrary<Record<string, unknown>> = fc.record(
          Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, valid(v)])),
          { requiredKeys: (s.required ?? []).filter((k) => k in properties) },
        ) as fc.Arbitrary<Record<string, unknown>>;
        if (typeof s.additionalProperties === 'object') {
          // A string map (headers): names as Herald accepts them, the values from the document.
          object = fc.dictionary(fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/), valid(s.additionalProperties), { maxKeys: Math.min(s.maxProperties ?? 4, 4) });
        }
        return s.minProperties ? object.filter((o) => Object.keys(o).length >= (s.minProperties ?? 0)) : object;
      }
      default:
        return fc.oneof(anyJson, fc.constantFrom(0, -0, 1e21, 12345678901234567890, 5e-324, '', {}, [], null));
    }
  }

  function invalid(schema: Schema): fc.Arbitrary<unknown> {
    const s = resolve(schema);
    const options: Array<fc.Arbitrary<unknown>> = [wrongType, huge];
    if (s.enum) options.push(badText, fc.constantFrom(...s.enum.map((v) => (typeof v === 'string' ? v.toUpperCase() : String(v)))));
    const branches = s.oneOf ?? s.anyOf;
    if (branches) options.push(...branches.map(invalid));
    switch (s.type) {
      case 'string':
        options.push(badText, fc.constant('a'.repeat((s.maxLength ?? 4096) + 1)), fc.integer());
        if (s.minLength) options.push(fc.constant(''));
        // weighted up: a date the validator passes but a Date cannot hold is the one that hurts
        if (s.format === 'date-time') options.push(...Array.from({ length: 4 }, () => fc.constantFrom(...INVALID_DATE_TIMES)));
        if (s.format === 'uri') options.push(fc.constantFrom('not a url', 'ftp://x/y', 'javascript:alert(1)', '//x', 'http://', 'https://exa mple.com/'));
        break;
      case 'integer':
      case 'number':
        options.push(
          fc.constantFrom(1.5, '5', 1e21, Number.MAX_SAFE_INTEGER + 2, -(2 ** 63)),
          ...(s.minimum !== undefined ? [fc.constant(s.minimum - 1)] : []),
          ...(s.maximum !== undefined ? [fc.constant(s.maximum + 1)] : []),
        );
        break;
      case 'object': {
        const properties = Object.keys(s.properties ?? {});
        const base = valid(s) as fc.Arbitrary<Record<string, unknown>>;
        options.push(
          // an unknown member, including names that would be prototype keys in a plain object
          fc.tuple(base, fc.constantFrom('extra', '__proto__', 'constructor', 'Topic'), anyJson).map(([o, k, v]) => withKey(o, k, v)),
          fc.array(anyJson, { maxLength: 3 }),
        );
        for (const key of s.required ?? []) options.push(base.map(({ [key]: _gone, ...rest }) => rest));
        for (const key of properties) options.push(fc.tuple(base, invalid((s.properties ?? {})[key] ?? {})).map(([o, v]) => ({ ...o, [key]: v })));
        if (typeof s.additionalProperties === 'object') {
          options.push(fc.dictionary(fc.oneof(badText, fc.string()), fc.oneof(valid(s.additionalProperties), invalid(s.additionalProperties)), { minKeys: 1, maxKeys: 3 }));
        }
        break;
      }
      default:
        break;
    }
    return fc.oneof(...options);
  }

  return { valid, invalid, resolve, anyJson };
}

/**
 * The judge: Ajv compiled from the document (not from the server's TypeBox schemas), with
 * Herald's stricter reading of date-time (one a Date can hold: no leap second) and of numbers
 * (one a double holds exactly: not 1e400).
 */
export function judge(doc: Document) {
  const ajv = new Ajv2020({ strict: false, allErrors: false });
  addFormats.default(ajv, ['uri']);
  const rfc3339 = fullFormats['date-time'] as { validate: (s: string) => boolean };
  ajv.addFormat('date-time', { validate: (s: string) => rfc3339.validate(s) && !Number.isNaN(Date.parse(s)) });
  ajv.addSchema({ $id: 'doc', components: doc.components });
  const cache = new Map<unknown, ValidateFunction>();
  const compile = (schema: Schema) => {
    let fn = cache.get(schema);
    if (!fn) {
      fn = ajv.compile(JSON.parse(JSON.stringify(schema).replace(/"#\/components\//g, '"doc#/components/')));
      cache.set(schema, fn);
    }
    return fn;
  };
  const coercing = new Ajv2020({ strict: false, coerceTypes: true });
  addFormats.default(coercing, ['uri']);
  coercing.addFormat('date-time', { validate: (s: string) => rfc3339.validate(s) && !Number.isNaN(Date.parse(s)) });
  const queryCache = new Map<unknown, ValidateFunction>();

  /** Why a value breaks a schema, or undefined when it conforms. */
  function problem(schema: Schema, value: unknown, where: string): string | undefined {
    const fn = compile(schema);
    if (fn(value)) return undefined;
    const e = fn.errors?.[0];
    return `${where}${e?.instancePath ?? ''} ${e?.message ?? 'is invalid'}`;
  }

  /** Parameters arrive as text and are coerced to their declared type, as Fastify does. */
  function parameterProblem(parameters: Parameter[], place: 'path' | 'query', values: Record<string, string | string[]>): string | undefined {
    const own = parameters.filter((p) => p.in === place);
    let fn = queryCache.get(own);
    if (!fn) {
      const schema = { type: 'object', properties: Object.fromEntries(own.map((p) => [p.name, p.schema])), required: own.filter((p) => p.required).map((p) => p.name) };
      fn = coercing.compile(schema);
      queryCache.set(own, fn);
    }
    if (fn({ ...values })) return undefined;
    const e = fn.errors?.[0];
    return `${place}${e?.instancePath ?? ''} ${e?.message ?? 'is invalid'}`;
  }

  return { problem, parameterProblem };
}

/** A number JSON text can write but no double holds: JSON.parse turns it into ±Infinity. */
export function unrepresentable(value: unknown, path = 'body'): string | undefined {
  if (typeof value === 'number' && !Number.isFinite(value)) return `${path} is a number no double holds`;
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const found = unrepresentable(v, `${path}.${k}`);
      if (found) return found;
    }
  }
  return undefined;
}

export function operations(doc: Document): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ ...op, method: method.toUpperCase(), path })));
}
