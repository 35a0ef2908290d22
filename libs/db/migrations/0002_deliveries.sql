-- Herald 0002: subscriptions, deliveries (one per confirmed message × matching subscription)
-- and the attempts made for each delivery.
-- DDL is not transactional in MySQL: every statement is written to be re-runnable, so a
-- migration cut off half-way (the process killed) completes on the next start.
CREATE TABLE IF NOT EXISTS subscriptions (
  id                         VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name                       VARCHAR(200) NOT NULL,
  topic_pattern              VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_type                VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target                     TEXT NOT NULL,
  max_attempts               SMALLINT UNSIGNED NOT NULL,
  backoff_initial_ms         INT UNSIGNED NOT NULL,
  backoff_max_ms             INT UNSIGNED NOT NULL,
  enabled                    TINYINT(1) NOT NULL,
  disabled_reason            VARCHAR(500) NULL,
  secret                     VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NULL,
  previous_secret            VARCHAR(100) CHARACTER SET ascii COLLATE ascii_bin NULL,
  previous_secret_expires_at DATETIME(3) NULL,
  created_at                 DATETIME(3) NOT NULL,
  updated_at                 DATETIME(3) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_subscriptions_enabled (enabled),
  KEY ix_subscriptions_created (created_at, id),
  CONSTRAINT ck_subscriptions_target CHECK (target_type IN ('webhook', 'rabbitmq'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- `generation` counts replays: a job carries (id, generation, attempts), so a job left over
-- from before a replay, or a duplicate, finds the row moved on and does nothing.
-- `lease_until` is set while a worker sends; a worker killed mid-send leaves it to expire,
-- and the reconciler schedules the delivery again.
CREATE TABLE IF NOT EXISTS deliveries (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  message_id       VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  subscription_id  VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_type      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status           VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempts         SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  generation       SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  next_attempt_at  DATETIME(3) NULL,
  lease_until      DATETIME(3) NULL,
  last_error       VARCHAR(1000) NULL,
  last_status_code SMALLINT UNSIGNED NULL,
  created_at       DATETIME(3) NOT NULL,
  updated_at       DATETIME(3) NOT NULL,
  delivered_at     DATETIME(3) NULL,
  dead_at          DATETIME(3) NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_deliveries_message_subscription (message_id, subscription_id),
  -- the reconciler: pending deliveries whose attempt is due
  KEY ix_deliveries_status_next (status, next_attempt_at),
  -- bulk replay of a subscription's dead deliveries by time
  KEY ix_deliveries_subscription_status (subscription_id, status, dead_at),
  CONSTRAINT ck_deliveries_status CHECK (status IN ('pending', 'delivered', 'dead'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE IF NOT EXISTS delivery_attempts (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  delivery_id      BIGINT UNSIGNED NOT NULL,
  generation       SMALLINT UNSIGNED NOT NULL,
  attempt          SMALLINT UNSIGNED NOT NULL,
  started_at       DATETIME(3) NOT NULL,
  duration_ms      INT UNSIGNED NOT NULL,
  ok               TINYINT(1) NOT NULL,
  status_code      SMALLINT UNSIGNED NULL,
  error            VARCHAR(1000) NULL,
  response_excerpt VARCHAR(1024) NULL,
  PRIMARY KEY (id),
  KEY ix_delivery_attempts_delivery (delivery_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
