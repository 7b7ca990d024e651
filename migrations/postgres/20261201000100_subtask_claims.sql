-- As ../20261201000100_subtask_claims.sql: who runs (or ran) a subtask and
-- until when its claim holds.
ALTER TABLE subtasks ADD COLUMN claimed_by TEXT;
ALTER TABLE subtasks ADD COLUMN claim_expires_at BIGINT;
CREATE INDEX subtasks_by_claim ON subtasks (claimed_by, status);
