-- fieldcloud 0001: organisations, workers, jobs, offers and the job event log.
--
-- Times are POSIX seconds in double precision (exactly the Python floats the
-- domain uses; to_timestamp(x) turns them into timestamptz for reporting).
-- Ids are text. A worker's last fix is hot state and lives in Redis.

CREATE TABLE orgs (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  double precision NOT NULL
);

-- API keys, stored hashed; several per organisation so keys can be rotated.
CREATE TABLE org_keys (
    key_hash    text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE
);
CREATE INDEX org_keys_org ON org_keys (org_id);

CREATE TABLE workers (
    id            text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name          text NOT NULL,
    kind          text NOT NULL
                  CHECK (kind IN ('employee', 'contractor', 'freelancer')),
    skills        text[] NOT NULL DEFAULT '{}',
    availability  text NOT NULL DEFAULT 'off_duty'
                  CHECK (availability IN ('available', 'busy', 'off_duty')),
    token_hash    text NOT NULL UNIQUE,
    created_at    double precision NOT NULL
);
CREATE INDEX workers_org ON workers (org_id);

CREATE TABLE jobs (
    id             text PRIMARY KEY,
    org_id         text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    title          text NOT NULL,
    description    text NOT NULL DEFAULT '',
    external_ref   text,
    lat            double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng            double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    cell           bigint NOT NULL,           -- H3 cell at the configured resolution
    skills         text[] NOT NULL DEFAULT '{}',
    priority       integer NOT NULL,
    state          text NOT NULL
                   CHECK (state IN ('open', 'assigned', 'en_route', 'on_site',
                                    'completed', 'cancelled', 'unfilled')),
    worker_id      text,
    wave           integer NOT NULL DEFAULT 0,
    wave_radius_m  double precision NOT NULL DEFAULT 0,
    wave_deadline  double precision,
    version        bigint NOT NULL DEFAULT 0,
    last_seq       integer NOT NULL DEFAULT 0, -- seq of the newest job_events row
    created_at     double precision NOT NULL,
    updated_at     double precision NOT NULL
);
-- due() / next_deadline(): open jobs by deadline.
CREATE INDEX jobs_due ON jobs (wave_deadline)
    WHERE state = 'open' AND wave_deadline IS NOT NULL;
-- open_jobs_near(): bounding box over an organisation's open jobs.
CREATE INDEX jobs_open_near ON jobs (org_id, lat, lng) WHERE state = 'open';
-- per-cell demand (live map) and cell-based lookups.
CREATE INDEX jobs_open_cell ON jobs (org_id, cell) WHERE state = 'open';
-- active_job_of().
CREATE INDEX jobs_active_worker ON jobs (worker_id)
    WHERE state IN ('assigned', 'en_route', 'on_site');
CREATE INDEX jobs_external_ref ON jobs (org_id, external_ref)
    WHERE external_ref IS NOT NULL;

CREATE TABLE offers (
    n           bigint GENERATED ALWAYS AS IDENTITY, -- insertion order within a job
    id          text PRIMARY KEY,
    org_id      text NOT NULL,
    job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    worker_id   text NOT NULL,
    wave        integer NOT NULL,
    distance_m  double precision NOT NULL,
    sent_at     double precision NOT NULL,
    expires_at  double precision NOT NULL,
    state       text NOT NULL
                CHECK (state IN ('pending', 'accepted', 'declined', 'expired',
                                 'taken', 'cancelled', 'withdrawn')),
    closed_at   double precision
);
CREATE INDEX offers_job ON offers (job_id, n);
CREATE INDEX offers_pending_worker ON offers (worker_id) WHERE state = 'pending';

-- Append-only: rows are inserted under the job's row lock with seq = last_seq + 1.
CREATE TABLE job_events (
    job_id  text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     integer NOT NULL CHECK (seq >= 1),
    org_id  text NOT NULL,
    at      double precision NOT NULL,
    kind    text NOT NULL,
    data    jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (job_id, seq)
);

CREATE FUNCTION job_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'job_events is append-only';
END
$$;
CREATE TRIGGER job_events_no_update BEFORE UPDATE ON job_events
    FOR EACH ROW EXECUTE FUNCTION job_events_append_only();
