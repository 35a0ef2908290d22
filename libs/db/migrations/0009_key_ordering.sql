-- Herald 0009: per-key ordered delivery (docs/design.md, "Per-key ordering").
--
-- Expand-only: new columns are nullable or have a default, and no statement of the previous
-- release reads or writes them, so it keeps running on this schema during a rolling upgrade.
-- A subscription with `ordering = 'key'` delivers the messages of one key one at a time, in the
-- order their commits created the deliveries (delivery ids, assigned under the key's lock row).
ALTER TABLE subscriptions
  ADD COLUMN ordering VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'none',
  ADD CONSTRAINT ck_subscriptions_ordering CHECK (ordering IN ('none', 'key'));

-- `order_key` (`<tenant>/<key>/`: the closing `/` keeps a key's trailing spaces significant) puts a delivery in its key's sequence, in id order. The open
-- ones (pending, or dead and not skipped) are always the sequence's tail; the first of them is
-- the head, the only one that may be due. The others wait with no `next_attempt_at`, and the
-- transaction that delivers (or skips) the head makes the next one due.
ALTER TABLE deliveries
  ADD COLUMN order_key VARCHAR(322) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  ADD COLUMN skipped_at DATETIME(3) NULL,
  ADD KEY ix_deliveries_order (subscription_id, order_key, id);

-- One row per (subscription, key): every transaction that appends to a key's sequence or moves
-- its head upserts it first, which serialises them per key until commit. `last_delivery_id` is
-- the sequence's last delivery: the key is busy while that one is open.
CREATE TABLE IF NOT EXISTS delivery_order_locks (
  subscription_id  VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  order_key        VARCHAR(322) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  last_delivery_id BIGINT UNSIGNED NULL,
  locked_at        DATETIME(3) NOT NULL,
  PRIMARY KEY (subscription_id, order_key),
  KEY ix_delivery_order_locks_locked (locked_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
