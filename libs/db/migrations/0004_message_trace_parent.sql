-- Herald 0004: the W3C trace context of the request that stored a message.
--
-- Later work on the message runs in other processes (check-back calls, delivery attempts); with
-- tracing on they continue this trace, so one message is one trace end to end. A traceparent is
-- exactly 55 characters (version 00); NULL when tracing was off. It is never sent to clients.
-- (Plain ADD COLUMN: MySQL 8 has no IF NOT EXISTS here; the migrator applies each file once.)
ALTER TABLE messages ADD COLUMN trace_parent VARCHAR(55) CHARACTER SET ascii COLLATE ascii_bin NULL;
