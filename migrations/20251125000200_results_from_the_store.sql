-- A job's result is assembled inside the store, so a 10,000-file job's
-- finish holds one file's diff at a time instead of the whole patch and
-- report (and their copies on the way into SQLite).
--
-- The report is recomputed from the store (subtasks, attempts and the call
-- ledger) whenever it is read; the stored copy was never read.
ALTER TABLE jobs DROP COLUMN report_json;
-- What the patch changes, counted as its files' diffs are written.
ALTER TABLE jobs ADD COLUMN files_changed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lines_added   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lines_removed INTEGER NOT NULL DEFAULT 0;
-- The unified diff of an accepted subtask's file; `jobs.patch` is the
-- concatenation of its subtasks' diffs in plan order, built by SQLite.
ALTER TABLE subtasks ADD COLUMN diff TEXT;
