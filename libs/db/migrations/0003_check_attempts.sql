-- Herald 0003: every check-back call made for a prepared message, with what it came to.
CREATE TABLE IF NOT EXISTS check_attempts (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  message_id  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  check_no    SMALLINT UNSIGNED NOT NULL,
  started_at  DATETIME(3) NOT NULL,
  duration_ms INT UNSIGNED NOT NULL,
  answer      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status_code SMALLINT UNSIGNED NULL,
  error       VARCHAR(1000) NULL,
  PRIMARY KEY (id),
  KEY ix_check_attempts_message (message_id, id),
  CONSTRAINT ck_check_attempts_answer CHECK (answer IN ('commit', 'rollback', 'unknown'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
