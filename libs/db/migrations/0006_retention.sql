-- Herald 0006: retention. The purger finds messages that have been delivered, cancelled or
-- failed long enough through (status, updated_at): a terminal message's row is not written
-- again, so its updated_at is when it reached that status (see docs/design.md, "Retention").
-- `purge_runs` holds one row per purger name: when it last ran and what it removed, so any
-- process (the API's GET /v1/stats) can tell.
CREATE TABLE IF NOT EXISTS purge_runs (
  name             VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  last_run_at      DATETIME(3) NOT NULL,
  last_run_removed INT UNSIGNED NOT NULL,
  total_removed    BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Last: MySQL 8 has no ADD INDEX IF NOT EXISTS, and the table above is re-runnable.
ALTER TABLE messages ADD INDEX ix_messages_status_updated (status, updated_at);
