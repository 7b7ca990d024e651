-- Subtask claims: in a cluster any daemon may run a pending subtask of any
-- running job. The daemon that moves a subtask to `running` writes its name
-- in `claimed_by` (kept afterwards as the record of who ran it) and renews
-- `claim_expires_at` (unix seconds) while it runs; a claim that expires is
-- given back to `pending` by the job's owner. Writes for a claimed subtask
-- are fenced on `claimed_by` (see the store's fence module).
ALTER TABLE subtasks ADD COLUMN claimed_by TEXT;
ALTER TABLE subtasks ADD COLUMN claim_expires_at INTEGER;
CREATE INDEX subtasks_by_claim ON subtasks (claimed_by, status);
