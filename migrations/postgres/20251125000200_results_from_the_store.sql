-- As ../20251125000200_results_from_the_store.sql: the patch is assembled in the store
-- from per-subtask diffs; the stored report is gone.
ALTER TABLE jobs DROP COLUMN report_json;
ALTER TABLE jobs ADD COLUMN files_changed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lines_added   BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lines_removed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subtasks ADD COLUMN diff TEXT;
