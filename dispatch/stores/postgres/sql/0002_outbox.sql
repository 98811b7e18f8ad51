-- fieldcloud 0002: the transactional outbox (decision 0005).
--
-- A job transaction inserts the effects of its change here before it commits;
-- they are deleted once delivered. `n` orders them: the rows of one job are
-- inserted under that job's row lock, so within a job `n` follows commit
-- order. `due_at` is a lease in POSIX seconds: until then the committing
-- instance delivers the row; after it any instance's sweeper may claim it
-- (FOR UPDATE SKIP LOCKED) and extend the lease while it delivers.

CREATE TABLE outbox (
    n           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          text NOT NULL UNIQUE,      -- also the feed's de-duplication key
    job_id      text,                      -- the job whose transaction wrote it
    kind        text NOT NULL,             -- notice | freed | taken (more later)
    target      text NOT NULL,             -- a worker id for today's kinds
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  double precision NOT NULL,
    due_at      double precision NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 -- sweeper claims so far
);
CREATE INDEX outbox_due ON outbox (due_at, n);
CREATE INDEX outbox_job ON outbox (job_id, n) WHERE job_id IS NOT NULL;
