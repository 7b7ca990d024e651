-- What a subtask does to its file and where it came from (issue 11).
--
-- `action` is `edit` (every subtask before this migration), `create`, `delete`
-- or `move`; `move_to` is a move's new workspace-relative path. `selector_id`
-- names the plan selector that expanded to the subtask (NULL for an explicit
-- entry); `rule` is the ast-grep YAML rule the codemod tier runs on it (NULL
-- when it has none).
ALTER TABLE subtasks ADD COLUMN action      TEXT NOT NULL DEFAULT 'edit';
ALTER TABLE subtasks ADD COLUMN move_to     TEXT;
ALTER TABLE subtasks ADD COLUMN selector_id TEXT;
ALTER TABLE subtasks ADD COLUMN rule        TEXT;
