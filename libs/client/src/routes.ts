/**
 * Every route of the HTTP contract the client calls, by operation. A test compares this table with
 * `openapi.yaml`, so the client cannot drift from the service: a route added, renamed or removed
 * on one side fails the build until the other side follows.
 */
export const ROUTES = {
  prepareMessage: { method: 'POST', path: '/v1/messages' },
  confirmMessage: { method: 'POST', path: '/v1/messages/{id}/confirm' },
  cancelMessage: { method: 'POST', path: '/v1/messages/{id}/cancel' },
  getMessage: { method: 'GET', path: '/v1/messages/{id}' },
  listMessages: { method: 'GET', path: '/v1/messages' },
  listMessageDeliveries: { method: 'GET', path: '/v1/messages/{id}/deliveries' },
  redeliverMessage: { method: 'POST', path: '/v1/messages/{id}/redeliver' },
  createSubscription: { method: 'POST', path: '/v1/subscriptions' },
  listSubscriptions: { method: 'GET', path: '/v1/subscriptions' },
  getSubscription: { method: 'GET', path: '/v1/subscriptions/{id}' },
  updateSubscription: { method: 'PATCH', path: '/v1/subscriptions/{id}' },
  deleteSubscription: { method: 'DELETE', path: '/v1/subscriptions/{id}' },
  rotateSubscriptionSecret: { method: 'POST', path: '/v1/subscriptions/{id}/rotate-secret' },
  redeliverSubscription: { method: 'POST', path: '/v1/subscriptions/{id}/redeliver' },
  countSubscriptionDeadDeliveries: { method: 'GET', path: '/v1/subscriptions/{id}/dead-deliveries/count' },
  listBlockedKeys: { method: 'GET', path: '/v1/subscriptions/{id}/blocked-keys' },
  skipBlockedKey: { method: 'POST', path: '/v1/subscriptions/{id}/blocked-keys/skip' },
  getCaller: { method: 'GET', path: '/v1/me' },
  listAudit: { method: 'GET', path: '/v1/audit' },
  getStats: { method: 'GET', path: '/v1/stats' },
  getMinuteRates: { method: 'GET', path: '/v1/stats/rates' },
  getSubscriptionHealth: { method: 'GET', path: '/v1/stats/subscriptions' },
  liveness: { method: 'GET', path: '/healthz' },
  readiness: { method: 'GET', path: '/readyz' },
  metrics: { method: 'GET', path: '/metrics' },
} as const;

/** The name of one operation of the HTTP contract (its OpenAPI `operationId`). */
export type Operation = keyof typeof ROUTES;
