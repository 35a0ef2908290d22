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

/**
 * A JSON response with one example of its own: Swagger UI shows it rather than one assembled
 * from the fields' examples (every error as a 400, messages in states that cannot exist).
 */
export const jsonResponse = <S extends object>(schema: S, description: string, example: unknown) => ({
  description,
  content: { 'application/json': { schema, example } },
});

/** An error response whose example is an answer of that very status. */
export const errorResponse = (description: string, example: ErrorResponse) => jsonResponse(Type.Ref(ErrorResponse), description, example);
const error = (statusCode: number, error: string, description: string, message: string, field?: string) =>
  errorResponse(description, { statusCode, error, message, ...(field !== undefined && { field }) });

const retryAfter = (description: string) => ({ 'retry-after': { type: 'integer', minimum: 0, description } });

/** Documented error responses, reused by every route. */
export const Errors = {
  400: error(400, 'Bad Request', 'Validation failed; `message` and `field` name the field and the reason', 'body.topic must be 1–200 characters of A-Z a-z 0-9 . _ -, dot-separated non-empty words', 'topic'),
  401: error(401, 'Unauthorized', 'Missing or unknown bearer token', 'unknown bearer token'),
  403: error(403, 'Forbidden', 'The token’s role may not use this route', 'the producer role may not use this route; it needs admin'),
  404: error(404, 'Not Found', 'No such message or subscription', 'message order-1001:paid not found'),
  409: error(409, 'Conflict', 'Conflicts with the stored message', 'message order-1001:paid is cancelled; it cannot be confirmed'),
  413: error(413, 'Payload Too Large', 'Request body larger than HERALD_MAX_BODY_BYTES', 'request body exceeds the limit of 1048576 bytes (HERALD_MAX_BODY_BYTES)'),
  414: error(414, 'URI Too Long', 'A path parameter longer than 256 characters (an id is at most 128)', "'/v1/messages/aaaa…/confirm' is exceeding the max param length"),
  415: error(415, 'Unsupported Media Type', 'Content-Type is not application/json', 'Unsupported Media Type'),
  431: error(431, 'Request Header Fields Too Large', 'The request headers exceed the server’s limit (16 KiB)', 'Exceeded maximum allowed HTTP header size'),
  429: {
    ...error(429, 'Too Many Requests', 'Rate limit for this bearer token exceeded (HERALD_RATE_LIMIT_PER_MINUTE, counted across replicas); nothing was done', 'rate limit of 600 requests per minute for this token exceeded; retry in 12 seconds'),
    headers: retryAfter('Seconds until the token’s budget refills'),
  },
  503: {
    ...error(503, 'Service Unavailable', 'Overloaded (event-loop lag above HERALD_MAX_EVENT_LOOP_DELAY_MS), a backing service (MySQL) unavailable, or the process shutting down; nothing was done, retry (Herald’s writes are idempotent)', 'a backing service is unavailable; retry the request (Herald’s writes are idempotent)'),
    headers: retryAfter('Seconds to wait before retrying; sent when overloaded or when a backing service is unavailable'),
  },
} as const;

/** A string enum as JSON Schema `enum`, so a wrong value is answered with the allowed ones. */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] });
}
