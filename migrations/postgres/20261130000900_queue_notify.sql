-- PostgreSQL only: wake idle daemons when a job becomes claimable, instead of
-- every daemon polling the queue often. `NOTIFY cadre_queue` (payload: the job
-- id) is sent at commit when a job is inserted or moved back as `queued`, or
-- when a lease on an unfinished job is released. A daemon that misses one (it
-- was reconnecting) finds the job at its next slow poll.
CREATE FUNCTION cadre_notify_queue() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('cadre_queue', NEW.id);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_queued_notify
    AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued')
    EXECUTE FUNCTION cadre_notify_queue();

CREATE TRIGGER jobs_requeued_notify
    AFTER UPDATE OF status, lease_owner ON jobs
    FOR EACH ROW WHEN (
        (NEW.status = 'queued' AND OLD.status <> 'queued')
        OR (NEW.lease_owner IS NULL AND OLD.lease_owner IS NOT NULL
            AND NEW.status NOT IN ('completed', 'needs_human', 'failed', 'cancelled'))
    )
    EXECUTE FUNCTION cadre_notify_queue();
