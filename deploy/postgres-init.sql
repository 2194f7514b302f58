-- A separate database for Dagster's run/event/schedule storage (deploy/dagster/dagster.yaml);
-- the `revisit` database holds the activation state store (outbox, cursors).
CREATE DATABASE dagster OWNER revisit;
