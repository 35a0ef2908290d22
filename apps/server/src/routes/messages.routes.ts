import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import {
  CancelledMessageExample,
  ConfirmedMessageExample,
  DecisionBody,
  DeliveredMessageExample,
  DeliveryList,
  DeliveryListExample,
  Errors,
  jsonResponse,
  ListMessagesQuery,
  Message,
  MessageIdParams,
  MessageList,
  MessageListExample,
  PrepareMessageBody,
  PreparedMessageExample,
  RedeliverBody,
  Requeued,
  TenantQuery,
} from '@herald/contract';
import { checkUrlProblem, decodeCursor, DEFAULT_TENANT, encodeCursor, headersProblem, isCommitted, payloadProblem, topicMatches, type StoredMessage } from '@herald/domain';
import type { DecisionResult, DeliverySummary, FoundMessage, MessageRef } from '@herald/db';
import { privateUrlProblem } from '@herald/delivery';
import { badRequest, HttpProblem } from '../plugins/errors';
import { bindMessageLog } from '../plugins/logging';
import type { Caller } from '../keys';
import { operatorAction } from './operator-action';

const producer = { access: 'producer' as const };
const security = [{ bearer: [] }];
const MessageRef = Type.Ref(Message);
// Answered before any handler runs: 431 on every route, 414 where the path carries an id, and
// 413/415 wherever Fastify reads a body (every POST, whether or not the route declares one).
const anyRoute = { 431: Errors[431] };
const idRoute = { ...anyRoute, 414: Errors[414] };
const withBody = { 413: Errors[413], 415: Errors[415] };

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Stored payload bytes a listing page may carry; it ends early (with nextCursor) beyond them. */
export const LIST_PAGE_MAX_BYTES = 1_048_576;

/** Auth sets the caller on every route that is not public. */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw new Error(`${request.url} ran without a caller`);
  return request.caller;
}

/** The API shape of a stored message with the summary of its deliveries. */
export function toApiMessage(message: StoredMessage, deliveries: readonly DeliverySummary[]) {
  // The stored trace context and the row's seq are Herald's own business, not part of the contract.
  const { traceParent: _traceParent, seq: _seq, ...fields } = message as StoredMessage & { seq?: bigint };
  return {
    ...fields,
    nextCheckAt: iso(message.nextCheckAt),
    createdAt: message.createdAt.toISOString(),
    updatedAt: message.updatedAt.toISOString(),
    confirmedAt: iso(message.confirmedAt),
    cancelledAt: iso(message.cancelledAt),
    deliveries: deliveries.map((d) => ({ subscriptionId: d.subscriptionId, status: d.status, attempts: d.attempts, lastError: d.lastError })),
  };
}

export const messageRoutes: FastifyPluginAsyncTypebox<{ allowPrivateUrls: boolean }> = async (app, options) => {
  // Deliveries exist only once a message is committed (they are created by the confirm), so an
  // undecided or cancelled message needs no query for them.
  const withDeliveries = async (message: FoundMessage) =>
    toApiMessage(message, isCommitted(message.status) ? await app.deliveries.forMessage(message.seq) : []);

  /**
   * The message a route names. A producer's is looked up in its own tenant only, in one query, so
   * another tenant's message answers exactly as an unknown id. Admins and viewers name the tenant
   * with `?tenant=`; without it the id must be held by one tenant only (else 409 naming them).
   */
  async function messageRef(request: FastifyRequest, id: string, tenant: string | undefined): Promise<MessageRef> {
    const caller = callerOf(request);
    if (caller.role === 'producer') {
      if (tenant !== undefined && tenant !== caller.tenant) throw new HttpProblem(403, `this key belongs to tenant ${caller.tenant}; it may not name tenant ${tenant}`);
      return { tenant: caller.tenant, id };
    }
    if (tenant !== undefined) return { tenant, id };
    const holders = await app.messages.tenantsOf(id);
    if (holders.length > 1) throw new HttpProblem(409, `message ${id} exists in several tenants (${holders.join(', ')}); name one with ?tenant=`);
    return { tenant: holders[0] ?? DEFAULT_TENANT, id };
  }

  async function findMessage(request: FastifyRequest, id: string, tenant: string | undefined): Promise<FoundMessage> {
    const message = await app.messages.find(await messageRef(request, id, tenant));
    if (!message) throw new HttpProblem(404, `message ${id} not found`);
    return message;
  }

  async function decisionReply(result: DecisionResult, id: string, verb: 'confirmed' | 'cancelled') {
    switch (result.kind) {
      case 'not_found':
        throw new HttpProblem(404, `message ${id} not found`);
      case 'conflict':
        throw new HttpProblem(409, `message ${id} is ${result.message.status}; it cannot be ${verb}`);
      case 'applied':
        return toApiMessage(result.message, result.fanOut.deliveries);
      default:
        return withDeliveries(result.message);
    }
  }

  app.post('/v1/messages', {
    config: producer,
    schema: {
      operationId: 'prepareMessage',
      summary: 'Prepare a message (or publish it directly with confirm: true)',
      description:
        'Stores a half message: durable, invisible to consumers until confirmed. `checkUrl` is required unless `confirm` is true. ' +
        'Retrying with the same `id` and the same content answers 200 with the stored message; the same `id` with different content is 409.',
      tags: ['messages'],
      security,
      body: PrepareMessageBody,
      response: {
        201: jsonResponse(MessageRef, 'Stored', PreparedMessageExample),
        200: jsonResponse(MessageRef, 'Already stored with the same content (idempotent retry)', PreparedMessageExample),
        400: Errors[400], 401: Errors[401], 403: Errors[403], 409: Errors[409], 429: Errors[429], 503: Errors[503], ...withBody, ...anyRoute,
      },
    },
  }, async (request, reply) => {
    const body = request.body;
    if (body.confirm !== true && body.checkUrl === undefined) {
      throw badRequest({ field: 'checkUrl', reason: 'is required unless confirm is true' });
    }
    const problem = checkUrlProblem(body.checkUrl) ?? headersProblem(body.headers) ?? payloadProblem(body.payload);
    if (problem) throw badRequest(problem);
    const privateUrl = body.checkUrl && !options.allowPrivateUrls ? privateUrlProblem(body.checkUrl) : undefined;
    if (privateUrl) throw badRequest({ field: 'checkUrl', reason: privateUrl });

    // Bound before the write, so an error line from it (MySQL down: 503) names the message too.
    const caller = callerOf(request);
    if (caller.topics && !caller.topics.some((pattern) => topicMatches(pattern, body.topic))) {
      throw new HttpProblem(403, `this key may not prepare or publish on topic ${body.topic}`);
    }
    if (body.id !== undefined) bindMessageLog(request, reply, body.id);
    const outcome = await app.messages.prepare(body, { tenant: caller.tenant, traceParent: app.tracing.traceParentFor(request) });
    // Dispatched first: the deliveries it leased hold slots until the dispatcher runs them.
    const dispatched = outcome.kind === 'created' ? app.dispatcher.dispatch(outcome.fanOut, outcome.message.id) : undefined;
    if (body.id === undefined) bindMessageLog(request, reply, outcome.message.id);
    app.tracing.joinMessage(request, outcome.message);
    if (outcome.kind === 'conflict') {
      throw new HttpProblem(409, `message ${outcome.message.id} already exists with different content`, 'id');
    }
    if (outcome.kind === 'created') {
      app.metrics.storedByTenant.inc({ tenant: outcome.message.tenant, status: outcome.message.status });
      await dispatched;
      return reply.code(201).send(toApiMessage(outcome.message, outcome.fanOut.deliveries));
    }
    return reply.code(200).send(await withDeliveries(outcome.message));
  });

  const decisions = [
    { verb: 'confirm', done: 'confirmed', example: ConfirmedMessageExample, operationId: 'confirmMessage', summary: 'Confirm (commit) a prepared message', description: 'Idempotent. Also resolves an `unresolved` message. Creates one delivery per matching subscription in the same transaction. 409 if the message was cancelled. An admin’s confirm may carry a `reason` and is kept in the audit log.' },
    { verb: 'cancel', done: 'cancelled', example: CancelledMessageExample, operationId: 'cancelMessage', summary: 'Cancel (roll back) a prepared message', description: 'Idempotent. Also resolves an `unresolved` message. 409 if the message was confirmed (or delivered, or failed). An admin’s cancel may carry a `reason` and is kept in the audit log.' },
  ] as const;
  for (const d of decisions) {
    app.post(`/v1/messages/:id/${d.verb}`, {
      config: producer,
      schema: {
        operationId: d.operationId,
        summary: d.summary,
        description: d.description,
        tags: ['messages'],
        security,
        params: MessageIdParams,
        querystring: TenantQuery,
        body: Type.Optional(DecisionBody),
        response: { 200: jsonResponse(MessageRef, `The message, ${d.done}`, d.example), 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 409: Errors[409], 429: Errors[429], 503: Errors[503], ...withBody, ...idRoute },
      },
    }, async (request) => {
      const ref = await messageRef(request, request.params.id, request.query.tenant);
      const audit = operatorAction(request, `message.${d.verb}`, 'message', ref, request.body?.reason);
      const result = await app.messages.decide(ref, d.verb, audit);
      // Dispatched first: the deliveries it leased hold slots until the dispatcher runs them.
      const dispatched = result.kind === 'applied' ? app.dispatcher.dispatch(result.fanOut, request.params.id) : undefined;
      if (result.kind !== 'not_found') app.tracing.joinMessage(request, result.message);
      await dispatched;
      return decisionReply(result, request.params.id, d.done);
    });
  }

  app.get('/v1/messages/:id', {
    config: producer,
    schema: {
      operationId: 'getMessage',
      summary: 'Get a message with its status, checks, timestamps and deliveries',
      tags: ['messages'],
      security,
      params: MessageIdParams,
      querystring: TenantQuery,
      response: { 200: jsonResponse(MessageRef, 'The message with its check-back calls', DeliveredMessageExample), 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 409: Errors[409], 429: Errors[429], 503: Errors[503], ...idRoute },
    },
  }, async (request) => {
    const message = await findMessage(request, request.params.id, request.query.tenant);
    const checkAttempts = await app.checks.attempts(message.seq);
    return { ...(await withDeliveries(message)), checkAttempts: checkAttempts.map((c) => ({ ...c, at: c.at.toISOString() })) };
  });

  app.get('/v1/messages/:id/deliveries', {
    config: producer,
    schema: {
      operationId: 'listMessageDeliveries',
      summary: 'A message’s deliveries with every attempt',
      description: 'Each delivery with its attempts (time, duration, status code, error, first 1 KiB of the response), newest attempt first.',
      tags: ['messages'],
      security,
      params: MessageIdParams,
      querystring: TenantQuery,
      response: { 200: jsonResponse(DeliveryList, 'The deliveries, each with its attempts', DeliveryListExample), 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 409: Errors[409], 429: Errors[429], 503: Errors[503], ...idRoute },
    },
  }, async (request) => {
    const message = await findMessage(request, request.params.id, request.query.tenant);
    const items = await app.deliveries.forMessageWithAttempts(message.seq);
    return {
      items: items.map((d) => ({
        ...d,
        nextAttemptAt: iso(d.nextAttemptAt),
        deliveredAt: iso(d.deliveredAt),
        deadAt: iso(d.deadAt),
        skippedAt: iso(d.skippedAt),
        attemptsLog: d.attemptsLog.map((a) => ({ ...a, startedAt: a.startedAt.toISOString() })),
      })),
    };
  });

  app.post('/v1/messages/:id/redeliver', {
    config: { access: 'admin' as const },
    schema: {
      operationId: 'redeliverMessage',
      summary: 'Replay a message’s dead deliveries (or its delivered ones too)',
      description: 'Requeues the message’s dead deliveries, and with `{ "all": true }` its delivered ones too, as a new generation with a fresh attempt budget (pending ones are already on their way). A failed message goes back to confirmed. Name the tenant with `?tenant=` when several hold the id.',
      tags: ['messages'],
      security,
      params: MessageIdParams,
      querystring: TenantQuery,
      body: Type.Optional(RedeliverBody),
      response: { 202: Requeued, 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 409: Errors[409], 429: Errors[429], 503: Errors[503], ...withBody, ...idRoute },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const message = await findMessage(request, id, request.query.tenant);
    const audit = operatorAction(request, 'message.redeliver', 'message', message, request.body?.reason);
    app.tracing.joinMessage(request, message);
    if (!isCommitted(message.status)) {
      if (audit) await app.audit.record(audit, `refused: message is ${message.status}`);
      throw new HttpProblem(409, `message ${id} is ${message.status}; only confirmed messages have deliveries`);
    }
    const jobs = await app.deliveries.replayMessage(message.seq, request.body?.all === true, audit);
    await app.dispatcher.dispatch({ jobs }, id);
    return reply.code(202).send({ requeued: jobs.length });
  });

  app.get('/v1/messages', {
    config: producer,
    schema: {
      operationId: 'listMessages',
      summary: 'List messages, newest first',
      description: 'Filter by `status`, exact `topic`, exact `key` and the creation time range [`createdAfter`, `createdBefore`); admins and viewers also by `tenant` (a producer sees only its own tenant\'s messages). Page with the opaque `nextCursor`. `status=unresolved` lists messages held for a person; `status=prepared&createdBefore=…` lists transactions still open after a time.',
      tags: ['messages'],
      security,
      querystring: ListMessagesQuery,
      response: { 200: jsonResponse(MessageList, 'One page, newest first', MessageListExample), 400: Errors[400], 401: Errors[401], 403: Errors[403], 429: Errors[429], 503: Errors[503], ...anyRoute },
    },
  }, async (request) => {
    const { tenant, status, topic, key, createdAfter, createdBefore, limit = 50, cursor } = request.query;
    const caller = callerOf(request);
    if (caller.role === 'producer' && tenant !== undefined && tenant !== caller.tenant) throw new HttpProblem(403, `this key belongs to tenant ${caller.tenant}; it may not name tenant ${tenant}`);
    const position = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && !position) throw badRequest({ field: 'cursor', reason: 'is not a cursor this service issued' }, 'querystring');
    // Bounded in bytes too: 200 payloads of 1 MiB each read at once held 200 MB per request.
    const page = await app.messages.list({
      tenant: caller.role === 'producer' ? caller.tenant : tenant,
      status, topic, key, limit, beforeSeq: position?.seq,
      createdAfter: createdAfter ? new Date(createdAfter) : undefined,
      createdBefore: createdBefore ? new Date(createdBefore) : undefined,
      maxBytes: LIST_PAGE_MAX_BYTES,
    });
    const deliveries = await app.deliveries.forMessages(page.items.map((m) => m.seq));
    return {
      items: page.items.map((m) => toApiMessage(m, deliveries.get(m.seq) ?? [])),
      nextCursor: page.nextBeforeSeq === null ? null : encodeCursor({ seq: page.nextBeforeSeq }),
    };
  });
};
