-- Herald 0005: tenants. Every message belongs to a tenant; ids are unique per tenant.
--
-- Messages stored before this migration belong to tenant `default`. The unique key becomes
-- (id, tenant): id first, so an admin's lookup of an id across tenants uses it too. Deliveries
-- and check attempts now reference their message by `seq` (the primary key), which is unique
-- whatever the tenant; `message_id` stays on them for people reading the tables.
-- (Plain ALTERs: MySQL 8 has no IF NOT EXISTS for them; the migrator applies each file once.)
ALTER TABLE messages
  ADD COLUMN tenant VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'default' AFTER seq,
  DROP INDEX uq_messages_id,
  ADD UNIQUE KEY uq_messages_id_tenant (id, tenant),
  -- a tenant's listing, newest first: WHERE tenant = ? ORDER BY seq DESC
  ADD KEY ix_messages_tenant_seq (tenant, seq);

ALTER TABLE deliveries ADD COLUMN message_seq BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER id;
-- Before this migration ids were unique, so the id names exactly one message.
UPDATE deliveries d INNER JOIN messages m ON m.id = d.message_id SET d.message_seq = m.seq;
ALTER TABLE deliveries
  ALTER COLUMN message_seq DROP DEFAULT,
  DROP INDEX uq_deliveries_message_subscription,
  ADD UNIQUE KEY uq_deliveries_message_seq_subscription (message_seq, subscription_id);

ALTER TABLE check_attempts ADD COLUMN message_seq BIGINT UNSIGNED NOT NULL DEFAULT 0 AFTER id;
UPDATE check_attempts c INNER JOIN messages m ON m.id = c.message_id SET c.message_seq = m.seq;
ALTER TABLE check_attempts
  ALTER COLUMN message_seq DROP DEFAULT,
  DROP INDEX ix_check_attempts_message,
  ADD KEY ix_check_attempts_message_seq (message_seq, id);
