-- Herald 0008: an audit entry names the tenant of the message acted on.
--
-- Message ids are unique per tenant only (0005), so an entry's target id alone no longer says
-- which message it was. NULL for subscriptions, and for entries written before this migration.
ALTER TABLE audit_log
  ADD COLUMN tenant VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER target_id,
  ADD KEY ix_audit_log_tenant (tenant, id);
