-- Herald 0001: the messages table.
--
-- `seq` is the clustered primary key so inserts append to the B-tree instead of splitting pages
-- at random client-chosen ids; `id` is unique and case-sensitive (ascii_bin), as the contract
-- says ids and topics are. Timestamps are UTC DATETIME(3), written by Herald.
-- Deliveries, delivery attempts and check attempts will reference messages by `id`.
CREATE TABLE IF NOT EXISTS messages (
  seq                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  id                  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  topic               VARCHAR(200) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  message_key         VARCHAR(256) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  payload             LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  headers             TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  status              VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  check_url           VARCHAR(2048) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  check_after_ms      INT UNSIGNED NOT NULL,
  check_interval_ms   INT UNSIGNED NOT NULL,
  max_checks          SMALLINT UNSIGNED NOT NULL,
  on_checks_exhausted VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  delay_ms            INT UNSIGNED NOT NULL,
  checks              SMALLINT UNSIGNED NOT NULL DEFAULT 0,
  next_check_at       DATETIME(3) NULL,
  content_hash        CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at          DATETIME(3) NOT NULL,
  updated_at          DATETIME(3) NOT NULL,
  confirmed_at        DATETIME(3) NULL,
  cancelled_at        DATETIME(3) NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY uq_messages_id (id),
  -- "prepared messages whose check is due": WHERE status = 'prepared' AND next_check_at <= ?
  KEY ix_messages_status_next_check (status, next_check_at),
  -- listings, newest first: WHERE status = ? [AND topic = ?] ORDER BY seq DESC
  KEY ix_messages_status_seq (status, seq),
  -- listings by topic: WHERE topic = ? [AND status = ?] ORDER BY seq DESC
  KEY ix_messages_topic_seq (topic, seq),
  CONSTRAINT ck_messages_status CHECK (status IN ('prepared', 'confirmed', 'delivered', 'failed', 'cancelled', 'unresolved')),
  CONSTRAINT ck_messages_policy CHECK (on_checks_exhausted IN ('rollback', 'hold'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
