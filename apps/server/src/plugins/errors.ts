import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasErrorCode, WriteQueueFullError } from '@herald/db';
import { describeValidationError } from './validation';

/** An error meant for the client: its status and message are sent as they are. */
export class HttpProblem extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export function badRequest(problem: { field: string; reason: string }, where = 'body'): HttpProblem {
  return new HttpProblem(400, `${where}.${problem.field} ${problem.reason}`, problem.field);
}

/** Driver error codes that mean "MySQL is not reachable right now", not "Herald is broken". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK',
]);

function isBackendUnavailable(error: unknown): boolean {
  if (hasErrorCode(error, UNAVAILABLE_CODES)) return true;
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    // Too many writes already wait for MySQL: shed this one now rather than queue it.
    if (e instanceof WriteQueueFullError) return true;
    if (/Pool is closed|Queue limit reached/.test(e.message)) return true;
    // mysql2 marks errors that end a connection `fatal`; some carry no code, e.g. the one a
    // ROLLBACK gets on a connection MySQL dropped mid-transaction (drizzle then throws that one).
    if ((e as { fatal?: unknown }).fatal === true) return true;
  }
  return false;
}

/** Logs what went wrong without the SQL text, whose parameters carry payloads and headers. */
export function loggable(error: unknown): object {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    const driver = e as { code?: string; errno?: number; sqlMessage?: string };
    if (driver.sqlMessage || driver.errno) return { type: e.name, code: driver.code, errno: driver.errno, sqlMessage: driver.sqlMessage };
  }
  return error instanceof Error ? { type: error.name, message: error.message, stack: error.stack } : { value: String(error) };
}

/**
 * One error handler for every route. Client errors keep their message; server errors are
 * logged in full and answered with a generic message and the request id, never internals.
 */
export function installErrorHandling(app: FastifyInstance, maxBodyBytes: number): void {
  app.setErrorHandler((error: FastifyError | HttpProblem, request, reply) => {
    const send = (statusCode: number, message: string, field?: string) => {
      // A refused request (no token, body too large, or any refusal before its body was read)
      // closes its connection: else the client could keep it open sending the rest of the body.
      if (statusCode === 401 || statusCode === 413 || !request.raw.complete) void reply.header('connection', 'close');
      return reply.code(statusCode).send({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message, ...(field !== undefined && { field }) });
    };

    if ('validation' in error && error.validation) {
      const { field, message } = describeValidationError(error.validation, error.validationContext);
      return send(400, message, field);
    }
    if (error instanceof HttpProblem) return send(error.statusCode, error.message, error.field);
    const statusCode = error.statusCode ?? 500;
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return send(413, `request body exceeds the limit of ${maxBodyBytes} bytes (HERALD_MAX_BODY_BYTES)`);
    }
    if (hasErrorCode(error, ['ER_NET_PACKET_TOO_LARGE'])) {
      return send(413, 'request too large for the database (max_allowed_packet); lower HERALD_MAX_BODY_BYTES or raise max_allowed_packet');
    }
    if (statusCode >= 400 && statusCode < 500) return send(statusCode, error.message);
    if (isBackendUnavailable(error)) {
      request.log.warn({ err: loggable(error) }, 'backing service unavailable');
      reply.header('retry-after', '1');
      return send(503, 'a backing service is unavailable; retry the request (Herald’s writes are idempotent)');
    }
    request.log.error({ err: loggable(error) }, 'request failed');
    return send(500, `internal error; it was logged with request id ${request.id}`);
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 200)}` });
  });
}

/**
 * Herald speaks JSON only: other content types are 415 (Fastify's text/plain parser is removed).
 * Empty bodies on JSON POSTs (`curl -X POST -H 'content-type: application/json'`) are treated
 * as no body, so confirm and cancel work without one; everything else goes through Fastify's
 * own parser, which refuses prototype poisoning.
 */
export function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser(['application/json', 'text/plain']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    parse(request, text, (error, value) => {
      // Only the request body's own syntax error is the client's: say so with a 400.
      if (error) {
        // Fastify's parser also refuses valid JSON with these members (prototype poisoning), with
        // the same error: JSON.parse tells the two apart, on this failure path only.
        if (isJson(text)) {
          return done(new HttpProblem(400, 'body must not contain a "__proto__" member or a "constructor" member holding "prototype" (prototype poisoning)', ''), undefined);
        }
        return done(new HttpProblem(400, `body is not valid JSON: ${error.message}`, ''), undefined);
      }
      // Every body is an object; a literal null would pass for an absent optional body (Fastify's null).
      if (value === null) return done(new HttpProblem(400, 'body must be object (got null)', ''), undefined);
      done(null, value);
    });
  });
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
