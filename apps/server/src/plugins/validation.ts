import { Ajv, type ErrorObject } from 'ajv';
import { OptionalKind } from '@sinclair/typebox';
import addFormats from 'ajv-formats';
import type { FastifyInstance, FastifySchemaValidationError } from 'fastify';

/**
 * Two Ajv instances: bodies are validated strictly (no type coercion, unknown fields refused
 * rather than silently dropped), while querystrings and path params, which arrive as text, are
 * coerced to the declared types.
 */
export function installValidators(app: FastifyInstance): void {
  const strict = makeAjv(false);
  const coercing = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const validate = (httpPart === 'body' ? strict : coercing).compile(schema);
    // A body declared Type.Optional(...) may be absent altogether (POST with no body).
    // Fastify hands an absent body over as null, and reads a failure from the function's own
    // `errors`: without them a wrong body passed.
    if (httpPart === 'body' && OptionalKind in schema) {
      const optional = Object.assign((data: unknown) => {
        const valid = data === undefined || data === null || validate(data);
        optional.errors = valid ? null : validate.errors;
        return valid;
      }, { errors: null as typeof validate.errors });
      return optional;
    }
    return validate;
  });
}

function makeAjv(coerceTypes: boolean): Ajv {
  const ajv = new Ajv({
    coerceTypes,
    useDefaults: true,
    removeAdditional: false,
    allErrors: false,
    verbose: true,
    strict: false,
    discriminator: true,
  });
  addFormats.default(ajv, ['uri', 'date-time']);
  return ajv;
}

/** Turns the first validation error into "where.field reason" and the field's dotted path. */
export function describeValidationError(
  errors: FastifySchemaValidationError[],
  context: string | undefined,
): { field: string; message: string } {
  const error = errors[0] as ErrorObject | undefined;
  const where = context ?? 'request';
  if (!error) return { field: '', message: `${where} is invalid` };
  const path = error.instancePath.split('/').filter(Boolean).map(unescapePointer);
  let reason = error.message ?? 'is invalid';
  const parent = error.parentSchema as { description?: string; patternProperties?: Record<string, unknown> } | undefined;
  switch (error.keyword) {
    case 'required':
      path.push(String(error.params.missingProperty));
      reason = 'is required';
      break;
    case 'additionalProperties':
      path.push(String(error.params.additionalProperty));
      reason = parent?.patternProperties
        ? `is not an allowed name (${parent.description ?? `names must match ${Object.keys(parent.patternProperties).join(', ')}`})`
        : 'is not a known field';
      break;
    case 'enum':
      reason = `must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`;
      break;
    case 'pattern':
    case 'format':
      if (parent?.description) reason = `must be ${parent.description}`;
      break;
    default:
      break;
  }
  const field = path.join('.');
  return { field, message: `${[where, ...path].join('.')} ${reason}` };
}

function unescapePointer(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}
