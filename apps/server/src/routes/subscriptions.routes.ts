import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  BlockedKeyList,
  BulkRedeliverBody,
  CreatedSubscriptionExample,
  CreateSubscriptionBody,
  DeadCount,
  DeadCountQuery,
  Errors,
  errorResponse,
  jsonResponse,
  ListBlockedKeysQuery,
  ListSubscriptionsQuery,
  PatchSubscriptionBody,
  Requeued,
  RotateSecretBody,
  RotatedSecret,
  SkipKeyBody,
  SkippedKey,
  Subscription,
  SubscriptionExample,
  SubscriptionIdParams,
  SubscriptionList,
} from '@herald/contract';
import { canonicalTopicPattern, headersProblem, targetUrlProblem, type Subscription as StoredSubscription, type Target } from '@herald/domain';
import { privateUrlProblem } from '@herald/delivery';
import { SubscriptionLimitError, type BlockedKeyCursor } from '@herald/db';
import { badRequest, HttpProblem } from '../plugins/errors';
import { operatorAction } from './operator-action';

const admin = { access: 'admin' as const };
const security = [{ bearer: [] }];
const SubscriptionRef = Type.Ref(Subscription);
const DEFAULT_ROTATION_GRACE_MS = 24 * 3600_000;
const SubscriptionLimit = errorResponse('The topic pattern already has HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC subscriptions', {
  statusCode: 409,
  error: 'Conflict',
  message: 'topic pattern "order.paid" already has 50 subscriptions, the most allowed (HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC); delete one or use another pattern',
  field: 'topic',
});
const NotFound = errorResponse('No such subscription', { statusCode: 404, error: 'Not Found', message: 'subscription sub_0123456789abcdef0123 not found' });
const NotWebhook = errorResponse('Not a webhook subscription: it has no secret', { statusCode: 409, error: 'Conflict', message: 'subscription sub_0123456789abcdef0123 is not a webhook subscription; it has no secret' });
// Answered before any handler runs: 414 where the path carries an id (431 is in `errors`), and
// 413/415 wherever Fastify reads a body (every POST, PATCH and DELETE).
const idRoute = { 404: NotFound, 414: Errors[414] };
const withBody = { 413: Errors[413], 415: Errors[415] };

/**
 * The API shape of a subscription. Repository reads may carry the signing secrets along; they are
 * dropped here, so only answers that pass `secret` on purpose (create, rotate) ever show one.
 */
function toApiSubscription(stored: StoredSubscription, secret?: string | null) {
  const { secret: _s, previousSecret: _p, previousSecretExpiresAt: _e, ...s } = stored as StoredSubscription & { secret?: unknown; previousSecret?: unknown; previousSecretExpiresAt?: unknown };
  return { ...s, createdAt: s.createdAt.toISOString(), updatedAt: s.updatedAt.toISOString(), ...(secret ? { secret } : {}) };
}

function checkTarget(target: Target | undefined, allowPrivateUrls: boolean): void {
  if (target?.type !== 'webhook') return;
  const problem = targetUrlProblem(target.url, 'target.url') ?? headersProblem(target.headers, 'target.headers');
  if (problem) throw badRequest(problem);
  const privateUrl = allowPrivateUrls ? undefined : privateUrlProblem(target.url);
  if (privateUrl) throw badRequest({ field: 'target.url', reason: privateUrl });
}

/** One spelling per pattern: `a.#.#` next to `a.#` would double the per-pattern cap. */
function checkTopic(topic: string | undefined): void {
  if (topic === undefined) return;
  const canonical = canonicalTopicPattern(topic);
  if (canonical !== topic) throw badRequest({ field: 'topic', reason: `matches exactly what "${canonical}" matches; write it that way` });
}

const notFound = (id: string) => new HttpProblem(404, `subscription ${id} not found`);

/** The per-pattern cap as the client sees it: 409 naming the pattern and the cap. */
async function withinLimit<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof SubscriptionLimitError) {
      throw new HttpProblem(409, `topic pattern "${error.topic}" already has ${error.limit} subscriptions, the most allowed (HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC); delete one or use another pattern`, 'topic');
    }
    throw error;
  }
}

function encodeCursor(s: StoredSubscription): string {
  return Buffer.from(`${s.createdAt.toISOString()}|${s.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } | undefined {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  if (!id || !/^sub_[a-f0-9]{20}$/.test(id) || Number.isNaN(createdAt.getTime())) return undefined;
  return { createdAt, id };
}

function encodeBlockedCursor(c: BlockedKeyCursor): string {
  return Buffer.from(`${c.deadAt.toISOString()}|${c.deliveryId}`).toString('base64url');
}

function decodeBlockedCursor(cursor: string): BlockedKeyCursor | undefined {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const deadAt = new Date(at ?? '');
  if (!id || !/^[1-9][0-9]{0,15}$/.test(id) || Number.isNaN(deadAt.getTime())) return undefined;
  return { deadAt, deliveryId: Number(id) };
}

const NotBlocked = errorResponse('The key is not blocked on this subscription', { statusCode: 404, error: 'Not Found', message: 'key "order-1001" of tenant default is not blocked on subscription sub_0123456789abcdef0123' });

/** A PATCH of `enabled` alone is the console's Enable/Disable; any other is an update. */
function patchAction(body: object): string {
  const keys = Object.keys(body);
  if (keys.length === 1 && keys[0] === 'enabled') return (body as { enabled: boolean }).enabled ? 'subscription.enable' : 'subscription.disable';
  return 'subscription.update';
}

/** The range a bulk redeliver covered goes into the log with the operator's reason. */
function rangeReason(body: { since?: string; until?: string; reason?: string } | undefined): string | undefined {
  if (!body) return undefined;
  const range = `[${body.since ?? '…'}, ${body.until ?? '…'})`;
  return body.reason ? `${body.reason} ${range}` : range;
}

export const subscriptionRoutes: FastifyPluginAsyncTypebox<{ allowPrivateUrls: boolean; maxPerTopic: number }> = async (app, options) => {
  const base = { tags: ['subscriptions'], security };
  // These changes commit on their own; the record follows right after (a crash between the two loses the record).
  const audited = async (request: FastifyRequest, action: string, id: string, outcome: string) => {
    const entry = operatorAction(request, action, 'subscription', id);
    if (entry) await app.audit.record(entry, outcome);
  };
  const errors = { 400: Errors[400], 401: Errors[401], 403: Errors[403], 429: Errors[429], 431: Errors[431], 503: Errors[503] };

  app.post('/v1/subscriptions', {
    config: admin,
    schema: {
      ...base,
      operationId: 'createSubscription',
      summary: 'Create a subscription',
      description:
        'Messages whose topic matches `topic` are delivered to `target`. A webhook subscription’s response includes its `whsec_` signing secret, shown only here and on rotation. ' +
        'One topic pattern may have at most `HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC` subscriptions (default 50); beyond that the answer is 409.',
      body: CreateSubscriptionBody,
      response: { 201: jsonResponse(SubscriptionRef, 'Created; a webhook subscription’s answer carries its signing secret', CreatedSubscriptionExample), ...errors, 409: SubscriptionLimit, ...withBody },
    },
  }, async (request, reply) => {
    checkTopic(request.body.topic);
    checkTarget(request.body.target, options.allowPrivateUrls);
    const { subscription, secret } = await withinLimit(app.subscriptions.create(request.body, options.maxPerTopic));
    await audited(request, 'subscription.create', subscription.id, 'created');
    return reply.code(201).send(toApiSubscription(subscription, secret));
  });

  app.get('/v1/subscriptions', {
    config: admin,
    schema: { ...base, operationId: 'listSubscriptions', summary: 'List subscriptions, oldest first', querystring: ListSubscriptionsQuery, response: { 200: jsonResponse(SubscriptionList, 'One page, oldest first', { items: [SubscriptionExample], nextCursor: null }), ...errors } },
  }, async (request) => {
    const { limit = 100, cursor } = request.query;
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    if (cursor !== undefined && !after) throw badRequest({ field: 'cursor', reason: 'is not a cursor this service issued' }, 'querystring');
    const page = await app.subscriptions.list(limit + 1, after);
    const items = page.slice(0, limit);
    const last = items.at(-1);
    return { items: items.map((s) => toApiSubscription(s)), nextCursor: page.length > limit && last ? encodeCursor(last) : null };
  });

  app.get('/v1/subscriptions/:id', {
    config: admin,
    schema: { ...base, operationId: 'getSubscription', summary: 'Get a subscription (without its secret)', params: SubscriptionIdParams, response: { 200: jsonResponse(SubscriptionRef, 'The subscription, without its secret', SubscriptionExample), ...idRoute, ...errors } },
  }, async (request) => {
    const found = await app.subscriptions.get(request.params.id);
    if (!found) throw notFound(request.params.id);
    return toApiSubscription(found);
  });

  app.patch('/v1/subscriptions/:id', {
    config: admin,
    schema: {
      ...base,
      operationId: 'updateSubscription',
      summary: 'Change a subscription',
      description: 'Any field of the create body. Setting `enabled` clears a reason Herald recorded when it disabled the subscription. Deliveries already created go to the subscription as it is when they are attempted; while it is disabled they become dead (replay them after re-enabling). Moving it to a topic pattern that already has `HERALD_MAX_SUBSCRIPTIONS_PER_TOPIC` subscriptions is 409.',
      params: SubscriptionIdParams,
      body: PatchSubscriptionBody,
      response: { 200: jsonResponse(SubscriptionRef, 'The subscription as changed, without its secret', SubscriptionExample), ...idRoute, 409: SubscriptionLimit, ...errors, ...withBody },
    },
  }, async (request) => {
    checkTopic(request.body.topic);
    checkTarget(request.body.target as Target | undefined, options.allowPrivateUrls);
    const updated = await withinLimit(app.subscriptions.update(request.params.id, request.body as Parameters<typeof app.subscriptions.update>[1], options.maxPerTopic));
    if (!updated) throw notFound(request.params.id);
    const action = patchAction(request.body);
    await audited(request, action, updated.id, action === 'subscription.update' ? 'updated' : updated.enabled ? 'enabled' : 'disabled');
    return toApiSubscription(updated);
  });

  app.delete('/v1/subscriptions/:id', {
    config: admin,
    schema: {
      ...base,
      operationId: 'deleteSubscription',
      summary: 'Delete a subscription',
      description: 'Its pending deliveries become dead ("subscription was deleted") when next attempted; their history stays. On an ordered subscription each such delivery is also marked skipped, so its key moves on; a key already blocked stays listed under `blocked-keys` until skipped.',
      params: SubscriptionIdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...idRoute, ...errors, ...withBody },
    },
  }, async (request, reply) => {
    if (!(await app.subscriptions.delete(request.params.id))) throw notFound(request.params.id);
    await audited(request, 'subscription.delete', request.params.id, 'deleted');
    return reply.code(204).send(null);
  });

  app.post('/v1/subscriptions/:id/rotate-secret', {
    config: admin,
    schema: {
      ...base,
      operationId: 'rotateSubscriptionSecret',
      summary: 'Rotate a webhook subscription’s signing secret',
      description: 'Returns the new secret. For `graceMs` (default 24 h) each delivery carries two signatures, one per secret, so consumers can switch without a gap.',
      params: SubscriptionIdParams,
      body: Type.Optional(RotateSecretBody),
      response: { 200: RotatedSecret, ...idRoute, 409: NotWebhook, ...errors, ...withBody },
    },
  }, async (request) => {
    const id = request.params.id;
    const rotated = await app.subscriptions.rotateSecret(id, request.body?.graceMs ?? DEFAULT_ROTATION_GRACE_MS);
    if (!rotated) {
      if (await app.subscriptions.get(id)) throw new HttpProblem(409, `subscription ${id} is not a webhook subscription; it has no secret`);
      throw notFound(id);
    }
    await audited(request, 'subscription.rotate_secret', id, `old secret signs until ${rotated.previousSecretExpiresAt.toISOString()}`);
    return { secret: rotated.secret, previousSecretExpiresAt: rotated.previousSecretExpiresAt.toISOString() };
  });

  app.post('/v1/subscriptions/:id/redeliver', {
    config: admin,
    schema: {
      ...base,
      operationId: 'redeliverSubscription',
      summary: 'Replay a subscription’s dead deliveries',
      description: 'Requeues every dead delivery of this subscription that died within [`since`, `until`). Answers how many were requeued.',
      params: SubscriptionIdParams,
      body: Type.Optional(BulkRedeliverBody),
      response: { 202: Requeued, ...idRoute, ...errors, ...withBody },
    },
  }, async (request, reply) => {
    const id = request.params.id;
    if (!(await app.subscriptions.get(id))) throw notFound(id);
    const since = request.body?.since ? new Date(request.body.since) : undefined;
    const until = request.body?.until ? new Date(request.body.until) : undefined;
    const jobs = await app.deliveries.replaySubscription(id, since, until, operatorAction(request, 'subscription.redeliver', 'subscription', id, rangeReason(request.body)));
    await app.dispatcher.dispatch({ jobs }, `subscription:${id}`);
    return reply.code(202).send({ requeued: jobs.length });
  });

  app.get('/v1/subscriptions/:id/dead-deliveries/count', {
    config: admin,
    schema: {
      ...base,
      operationId: 'countSubscriptionDeadDeliveries',
      summary: 'Count a subscription’s dead deliveries',
      description: 'How many dead deliveries died within [`since`, `until`): what a redeliver with the same range would requeue now. Nothing is changed.',
      params: SubscriptionIdParams,
      querystring: DeadCountQuery,
      response: { 200: DeadCount, ...idRoute, ...errors },
    },
  }, async (request) => {
    const id = request.params.id;
    if (!(await app.subscriptions.get(id))) throw notFound(id);
    const { since, until } = request.query;
    return { dead: await app.deliveries.countDeadOfSubscription(id, since ? new Date(since) : undefined, until ? new Date(until) : undefined) };
  });

  app.get('/v1/subscriptions/:id/blocked-keys', {
    config: admin,
    schema: {
      ...base,
      operationId: 'listBlockedKeys',
      summary: 'Keys an ordered subscription is held up on',
      description:
        'On a subscription with `ordering: "key"`, a dead delivery blocks its key: later messages of the key wait. Each item names the dead delivery at the head, and how many wait behind it. ' +
        'Unblock a key by redelivering that message (once delivered, the next one goes), or skip it.',
      params: SubscriptionIdParams,
      querystring: ListBlockedKeysQuery,
      response: { 200: BlockedKeyList, ...idRoute, ...errors },
    },
  }, async (request) => {
    const id = request.params.id;
    const { limit = 100, cursor } = request.query;
    const after = cursor === undefined ? undefined : decodeBlockedCursor(cursor);
    if (cursor !== undefined && !after) throw badRequest({ field: 'cursor', reason: 'is not a cursor this service issued' }, 'querystring');
    const page = await app.blockedKeys.list(id, limit + 1, after);
    // A deleted subscription's keys stay listed (and skippable) while any is blocked.
    if (page.length === 0 && !after && !(await app.subscriptions.get(id))) throw notFound(id);
    const items = page.slice(0, limit);
    const last = items.at(-1);
    return {
      items: items.map((k) => ({ ...k, deadAt: k.deadAt.toISOString() })),
      nextCursor: page.length > limit && last ? encodeBlockedCursor({ deadAt: last.deadAt, deliveryId: last.deliveryId }) : null,
    };
  });

  app.post('/v1/subscriptions/:id/blocked-keys/skip', {
    config: admin,
    schema: {
      ...base,
      operationId: 'skipBlockedKey',
      summary: 'Skip the dead delivery that blocks a key',
      description:
        'The dead delivery at the head of the key stays dead (its message stays `failed`) and is marked skipped; the next message of the key is sent now. ' +
        'The skip and its `reason` go to the audit log in the same transaction. 404 if the key is not blocked on this subscription.',
      params: SubscriptionIdParams,
      body: SkipKeyBody,
      response: { 200: SkippedKey, 404: NotBlocked, 414: Errors[414], ...errors, ...withBody },
    },
  }, async (request) => {
    const id = request.params.id;
    const { tenant, key, reason } = request.body;
    const entry = operatorAction(request, 'subscription.skip_key', 'subscription', id, `${tenant}/${key}: ${reason}`);
    const skipped = await app.blockedKeys.skip(id, tenant, key, entry);
    if (!skipped) throw new HttpProblem(404, `key "${key}" of tenant ${tenant} is not blocked on subscription ${id}`);
    if (skipped.woken) await app.dispatcher.dispatch({ jobs: [skipped.woken] }, `subscription:${id}`);
    return { deliveryId: skipped.deliveryId, messageId: skipped.messageId, nextDeliveryId: skipped.woken?.deliveryId ?? null };
  });
};
