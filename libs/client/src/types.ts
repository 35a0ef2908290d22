import type { Static } from '@sinclair/typebox';
import type {
  AuditList,
  BlockedKeyList,
  ListBlockedKeysQuery,
  SkipKeyBody,
  SkippedKey,
  BulkRedeliverBody,
  Caller,
  DeadCount,
  DeadCountQuery,
  ListAuditQuery,
  MinuteRates,
  Stats,
  SubscriptionHealthList,
  SubscriptionHealthQuery,
  CreateSubscriptionBody,
  DeliveryList,
  ErrorResponse,
  ListMessagesQuery,
  ListSubscriptionsQuery,
  Liveness,
  Message,
  MessageList,
  PatchSubscriptionBody,
  PrepareMessageBody,
  Readiness,
  RedeliverBody,
  Requeued,
  RotatedSecret,
  RotateSecretBody,
  Subscription,
  SubscriptionList,
} from '@herald/contract';

// Request and response types are the contract's TypeBox schemas seen as TypeScript types, so a
// schema change on the service is a type error here. Only types are imported: the client ships
// no schema code and no runtime dependency.

/** `GET /v1/me`: the calling key's name and role. */
export type CallerResult = Static<typeof Caller>;
/** Query of `GET /v1/audit`. */
export type ListAuditInput = Static<typeof ListAuditQuery>;
/** One page of the operator audit log. */
export type HeraldAuditPage = Static<typeof AuditList>;
/** `GET /v1/stats`. */
export type StatsResult = Static<typeof Stats>;
/** `GET /v1/stats/rates`. */
export type MinuteRatesResult = Static<typeof MinuteRates>;
/** Query of `GET /v1/stats/subscriptions`. */
export type SubscriptionHealthInput = Static<typeof SubscriptionHealthQuery>;
/** `GET /v1/stats/subscriptions`. */
export type SubscriptionHealthResult = Static<typeof SubscriptionHealthList>;
/** Query of `GET /v1/subscriptions/{id}/dead-deliveries/count`. */
export type DeadCountInput = Static<typeof DeadCountQuery>;
/** `GET /v1/subscriptions/{id}/dead-deliveries/count`. */
export type DeadCountResult = Static<typeof DeadCount>;

/** Query of `GET /v1/subscriptions/{id}/blocked-keys`. */
export type ListBlockedKeysInput = Static<typeof ListBlockedKeysQuery>;
/** One page of the keys an ordered subscription is held up on. */
export type BlockedKeyPage = Static<typeof BlockedKeyList>;
/** Body of `POST /v1/subscriptions/{id}/blocked-keys/skip`. */
export type SkipKeyInput = Static<typeof SkipKeyBody>;
/** What a skip did: the skipped delivery and the key's next one, now due. */
export type SkippedKeyResult = Static<typeof SkippedKey>;

/** Body of `POST /v1/messages`. */
export type PrepareMessageInput = Static<typeof PrepareMessageBody>;
/** A message as the service returns it. */
export type HeraldMessage = Static<typeof Message>;
/** Query of `GET /v1/messages`. */
export type ListMessagesInput = Static<typeof ListMessagesQuery>;
/** One page of `GET /v1/messages`. */
export type HeraldMessagePage = Static<typeof MessageList>;
/** `GET /v1/messages/{id}/deliveries`. */
export type HeraldDeliveryList = Static<typeof DeliveryList>;
/** Body of `POST /v1/messages/{id}/redeliver`. */
export type RedeliverInput = Static<typeof RedeliverBody>;
/** `{ requeued }` of the redeliver routes. */
export type RequeuedResult = Static<typeof Requeued>;
/** Body of `POST /v1/subscriptions`. */
export type CreateSubscriptionInput = Static<typeof CreateSubscriptionBody>;
/** Body of `PATCH /v1/subscriptions/{id}`. */
export type UpdateSubscriptionInput = Static<typeof PatchSubscriptionBody>;
/** A subscription (with `secret` only when created or rotated). */
export type HeraldSubscription = Static<typeof Subscription>;
/** Query of `GET /v1/subscriptions`. */
export type ListSubscriptionsInput = Static<typeof ListSubscriptionsQuery>;
/** One page of `GET /v1/subscriptions`. */
export type HeraldSubscriptionPage = Static<typeof SubscriptionList>;
/** Body of `POST /v1/subscriptions/{id}/rotate-secret`. */
export type RotateSecretInput = Static<typeof RotateSecretBody>;
/** Answer of `POST /v1/subscriptions/{id}/rotate-secret`. */
export type RotatedSecretResult = Static<typeof RotatedSecret>;
/** Body of `POST /v1/subscriptions/{id}/redeliver`. */
export type BulkRedeliverInput = Static<typeof BulkRedeliverBody>;
/** `GET /healthz`. */
export type LivenessResult = Static<typeof Liveness>;
/** `GET /readyz` (200 or 503). */
export type ReadinessResult = Static<typeof Readiness>;
/** The error body of every non-2xx answer. */
export type HeraldErrorBody = Static<typeof ErrorResponse>;

/** What a producer's check URL answers. */
export type CheckStatus = 'commit' | 'rollback' | 'unknown';

/** The body Herald POSTs to a check URL. */
export interface CheckRequest {
  id: string;
  topic: string;
  key: string | null;
  check: number;
}
