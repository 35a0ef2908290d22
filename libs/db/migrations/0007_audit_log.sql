-- Herald 0007: the operator audit log, and the indexes the console's searches and rates read by.
--
-- One row per operator action (an admin's write): who (the key's name), what (action and target),
-- when, the reason given, and how it came out. Rows are only ever inserted.
CREATE TABLE IF NOT EXISTS audit_log (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  at          DATETIME(3) NOT NULL,
  actor       VARCHAR(64) NOT NULL,
  action      VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_type VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  target_id   VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason      VARCHAR(500) NULL,
  outcome     VARCHAR(200) NOT NULL,
  PRIMARY KEY (id),
  KEY ix_audit_log_target (target_type, target_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Search by business key, newest first; time ranges and the per-minute rates of the last hour
-- read a bounded range of these instead of scanning the tables.
ALTER TABLE messages
  ADD INDEX ix_messages_key_seq (message_key, seq),
  ADD INDEX ix_messages_created (created_at),
  ADD INDEX ix_messages_confirmed (confirmed_at);
-- With the subscription: a subscription's delivered count of the last hour reads the index alone.
ALTER TABLE deliveries ADD INDEX ix_deliveries_delivered (delivered_at, subscription_id);
