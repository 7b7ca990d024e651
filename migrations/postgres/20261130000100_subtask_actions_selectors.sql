-- As ../20261130000100_subtask_actions_selectors.sql: what a subtask does to
-- its file (edit, create, delete, move + move_to), the plan selector that
-- made it, and the ast-grep rule the codemod tier runs on it.
ALTER TABLE subtasks ADD COLUMN action      TEXT NOT NULL DEFAULT 'edit';
ALTER TABLE subtasks ADD COLUMN move_to     TEXT;
ALTER TABLE subtasks ADD COLUMN selector_id TEXT;
ALTER TABLE subtasks ADD COLUMN rule        TEXT;
