-- PostgreSQL only: wake idle daemons when a running job has files to share
-- (see ../20261201000100_subtask_claims.sql): `NOTIFY cadre_queue` (payload:
-- the job id) when a job moves to `running` (planned, or back from the
-- integration check or review with files sent back) and when a file goes
-- back from `running` to `pending` (given back by a daemon that stopped or
-- could not afford it, or whose claim expired). PostgreSQL delivers one
-- notification per distinct payload of a transaction. The daemon's slow
-- poll still catches a missed one.
CREATE TRIGGER jobs_running_notify
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'running' AND OLD.status <> 'running')
    EXECUTE FUNCTION cadre_notify_queue();

CREATE FUNCTION cadre_notify_subtask_freed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('cadre_queue', NEW.job_id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER subtasks_freed_notify
    AFTER UPDATE OF status ON subtasks
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status = 'running')
    EXECUTE FUNCTION cadre_notify_subtask_freed();
