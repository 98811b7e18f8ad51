-- fieldcloud 0011: Open311 GeoReport v2 — services, client keys, service requests.
--
-- A service's attributes are one jsonb document (they are read and written
-- whole). Client keys are stored as SHA-256 digests; a revoked key keeps its
-- row (revoked_at) so its id is never reused. A request names the job made
-- for it (jobs.external_ref holds the request's id the other way round); the
-- citizen's contact details stay in `contact` and are never shown by a read.

CREATE TABLE open311_services (
    org_id       text NOT NULL REFERENCES orgs (id),
    code         text NOT NULL,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    grp          text NOT NULL DEFAULT '',
    keywords     text[] NOT NULL DEFAULT '{}',
    skills       text[] NOT NULL DEFAULT '{}',
    attributes   jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    PRIMARY KEY (org_id, code)
);

CREATE TABLE open311_keys (
    id           text PRIMARY KEY,
    org_id       text NOT NULL REFERENCES orgs (id),
    name         text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    created_at   double precision NOT NULL,
    revoked_at   double precision
);

CREATE TABLE open311_requests (
    id            text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES orgs (id),
    token         text NOT NULL UNIQUE,
    service_code  text NOT NULL,
    service_name  text NOT NULL,
    job_id        text NOT NULL,
    lat           double precision NOT NULL,
    long          double precision NOT NULL,
    requested_at  double precision NOT NULL,
    description   text NOT NULL DEFAULT '',
    address       text NOT NULL DEFAULT '',
    address_id    text NOT NULL DEFAULT '',
    zipcode       text NOT NULL DEFAULT '',
    media_url     text NOT NULL DEFAULT '',
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    contact       jsonb NOT NULL DEFAULT '{}'::jsonb,
    client_id     text NOT NULL DEFAULT ''
);
-- GET requests: one organisation's requests in a window, newest first, by code.
CREATE INDEX open311_requests_window ON open311_requests (org_id, requested_at DESC, id DESC);
