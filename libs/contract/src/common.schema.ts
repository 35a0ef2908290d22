import { Type, type SchemaOptions, type Static, type TUnsafe } from '@sinclair/typebox';

/** Patterns are the contract (DESIGN.md section 4). Descriptions double as 400 reasons. */
export const MESSAGE_ID_PATTERN = '^[A-Za-z0-9_:-]{1,128}$';
export const TOPIC_PATTERN = '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$';

export const MessageId = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: MESSAGE_ID_PATTERN,
  description: '1–128 characters of A-Z a-z 0-9 _ : - (no dot)',
  examples: ['order-1001:paid'],
});

export const Topic = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: TOPIC_PATTERN,
  description: '1–200 characters of A-Z a-z 0-9 . _ -, dot-separated non-empty words',
  examples: ['order.paid'],
});

export const Timestamp = Type.String({ format: 'date-time', description: 'UTC, millisecond precision', examples: ['2026-11-23T10:15:30.123Z'] });

export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer({ examples: [400] }),
    error: Type.String({ examples: ['Bad Request'] }),
    message: Type.String({ examples: ['body.topic must be 1–200 characters of A-Z a-z 0-9 . _ -, dot-separated non-empty words'] }),
    field: Type.Optional(Type.String({ description: 'The offending field, for validation errors', examples: ['topic'] })),
  },
  { $id: 'ErrorResponse', description: 'Every error has this shape; a 5xx never carries internals.' },
);
export type ErrorResponse = Static<typeof ErrorResponse>;

const error = (description: string) => ({ ...Type.Ref(ErrorResponse), description });

const retryAfter = (description: string) => ({ 'retry-after': { type: 'integer', minimum: 0, description } });

/** Documented error responses, reused by every route. */
export const Errors = {
  400: error('Validation failed; `message` and `field` name the field and the reason'),
  401: error('Missing or unknown bearer token'),
  403: error('The token’s role may not use this route'),
  404: error('No such message or subscription'),
  409: error('Conflicts with the stored message'),
  413: error('Request body larger than HERALD_MAX_BODY_BYTES'),
  415: error('Content-Type is not application/json'),
  429: {
    ...error('Rate limit for this bearer token exceeded (HERALD_RATE_LIMIT_PER_MINUTE, counted across replicas); nothing was done'),
    headers: retryAfter('Seconds until the token’s budget refills'),
  },
  503: {
    ...error('Overloaded (event-loop lag above HERALD_MAX_EVENT_LOOP_DELAY_MS), a backing service (MySQL) unavailable, or the process shutting down; nothing was done, retry (Herald’s writes are idempotent)'),
    headers: retryAfter('Seconds to wait before retrying; sent when overloaded or when a backing service is unavailable'),
  },
} as const;

/** A string enum as JSON Schema `enum`, so a wrong value is answered with the allowed ones. */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}
