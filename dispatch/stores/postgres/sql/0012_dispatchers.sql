-- fieldcloud 0012: dispatchers, and the indexes of the dispatcher's lists.
--
-- A dispatcher's token is stored hashed, like an organisation's key; a
-- revoked token (revoked_at set) never authenticates again, but the row
-- stays so that the job events a dispatcher made still name someone.

CREATE TABLE dispatchers (
    id          text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    created_at  double precision NOT NULL,
    revoked_at  double precision
);
CREATE INDEX dispatchers_org ON dispatchers (org_id, created_at);

-- GET /v1/workers and GET /v1/jobs: keyset pages by id within an organisation.
CREATE INDEX workers_org_id ON workers (org_id, id);
CREATE INDEX jobs_org_id ON jobs (org_id, id);
-- GET /v1/jobs?updated_since=…: what changed lately (a map catching up).
CREATE INDEX jobs_org_updated ON jobs (org_id, updated_at);
