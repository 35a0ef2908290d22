import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Errors, ListMessagesQuery, Message, MessageIdParams, MessageList, PrepareMessageBody } from '@herald/contract';
import { checkUrlProblem, decodeCursor, encodeCursor, headersProblem, payloadDepthProblem, type StoredMessage } from '@herald/domain';
import type { DecisionResult } from '@herald/db';
import { badRequest, HttpProblem } from '../plugins/errors';

const producer = { access: 'producer' as const };
const security = [{ bearer: [] }];
const MessageRef = Type.Ref(Message);

/** The API shape of a stored message. Deliveries arrive with the delivery engine. */
export function toApiMessage(message: StoredMessage) {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    ...message,
    nextCheckAt: iso(message.nextCheckAt),
    createdAt: message.createdAt.toISOString(),
    updatedAt: message.updatedAt.toISOString(),
    confirmedAt: iso(message.confirmedAt),
    cancelledAt: iso(message.cancelledAt),
    deliveries: [],
  };
}

function decisionReply(result: DecisionResult, id: string, verb: 'confirmed' | 'cancelled') {
  switch (result.kind) {
    case 'not_found':
      throw new HttpProblem(404, `message ${id} not found`);
    case 'conflict':
      throw new HttpProblem(409, `message ${id} is ${result.message.status}; it cannot be ${verb}`);
    default:
      return toApiMessage(result.message);
  }
}

export const messageRoutes: FastifyPluginAsyncTypebox = async (app) => {
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
        201: { ...MessageRef, description: 'Stored' },
        200: { ...MessageRef, description: 'Already stored with the same content (idempotent retry)' },
        400: Errors[400], 401: Errors[401], 403: Errors[403], 409: Errors[409], 413: Errors[413], 415: Errors[415], 503: Errors[503],
      },
    },
  }, async (request, reply) => {
    const body = request.body;
    if (body.confirm !== true && body.checkUrl === undefined) {
      throw badRequest({ field: 'checkUrl', reason: 'is required unless confirm is true' });
    }
    const problem = checkUrlProblem(body.checkUrl) ?? headersProblem(body.headers) ?? payloadDepthProblem(body.payload);
    if (problem) throw badRequest(problem);

    const outcome = await app.messages.prepare(body);
    if (outcome.kind === 'conflict') {
      throw new HttpProblem(409, `message ${outcome.message.id} already exists with different content`, 'id');
    }
    return reply.code(outcome.kind === 'created' ? 201 : 200).send(toApiMessage(outcome.message));
  });

  app.post('/v1/messages/:id/confirm', {
    config: producer,
    schema: {
      operationId: 'confirmMessage',
      summary: 'Confirm (commit) a prepared message',
      description: 'Idempotent. Also resolves an `unresolved` message. 409 if the message was cancelled.',
      tags: ['messages'],
      security,
      params: MessageIdParams,
      response: { 200: MessageRef, 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 409: Errors[409], 503: Errors[503] },
    },
  }, async (request) => decisionReply(await app.messages.decide(request.params.id, 'confirm'), request.params.id, 'confirmed'));

  app.post('/v1/messages/:id/cancel', {
    config: producer,
    schema: {
      operationId: 'cancelMessage',
      summary: 'Cancel (roll back) a prepared message',
      description: 'Idempotent. Also resolves an `unresolved` message. 409 if the message was confirmed (or delivered, or failed).',
      tags: ['messages'],
      security,
      params: MessageIdParams,
      response: { 200: MessageRef, 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 409: Errors[409], 503: Errors[503] },
    },
  }, async (request) => decisionReply(await app.messages.decide(request.params.id, 'cancel'), request.params.id, 'cancelled'));

  app.get('/v1/messages/:id', {
    config: producer,
    schema: {
      operationId: 'getMessage',
      summary: 'Get a message with its status, checks, timestamps and deliveries',
      tags: ['messages'],
      security,
      params: MessageIdParams,
      response: { 200: MessageRef, 400: Errors[400], 401: Errors[401], 403: Errors[403], 404: Errors[404], 503: Errors[503] },
    },
  }, async (request) => {
    const message = await app.messages.findById(request.params.id);
    if (!message) throw new HttpProblem(404, `message ${request.params.id} not found`);
    return toApiMessage(message);
  });

  app.get('/v1/messages', {
    config: producer,
    schema: {
      operationId: 'listMessages',
      summary: 'List messages, newest first',
      description: 'Filter by `status` and/or exact `topic`. Page with the opaque `nextCursor`.',
      tags: ['messages'],
      security,
      querystring: ListMessagesQuery,
      response: { 200: MessageList, 400: Errors[400], 401: Errors[401], 403: Errors[403], 503: Errors[503] },
    },
  }, async (request) => {
    const { status, topic, limit = 50, cursor } = request.query;
    const position = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && !position) throw badRequest({ field: 'cursor', reason: 'is not a cursor this service issued' }, 'querystring');
    const page = await app.messages.list({ status, topic, limit, beforeSeq: position?.seq });
    return {
      items: page.items.map(toApiMessage),
      nextCursor: page.nextBeforeSeq === null ? null : encodeCursor({ seq: page.nextBeforeSeq }),
    };
  });
};
