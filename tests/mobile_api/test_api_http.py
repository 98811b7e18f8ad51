"""The HTTP API refuses bad input with the right status and a JSON error body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.routing import Route

from mobile_api.auth import Role
from mobile_api.routes import ROUTES
from tests.mobile_api.live import ADMIN_TOKEN, PARIS, LiveServer, Org

JOB = {"title": "Fix lamp", "lat": PARIS[0], "lng": PARIS[1]}


def error_code(r: httpx.Response, status: int) -> str:
    """The ``error.code`` of a JSON error response with ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    code: str = body["error"]["code"]
    return code


@pytest.fixture
async def org(server: LiveServer) -> Org:
    return await server.create_org("Plant")


async def test_health_answers_without_a_token(server: LiveServer) -> None:
    """GET /healthz needs no token and says which backend runs."""
    r = await server.http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "mode": "memory"}


async def test_ready_answers_without_a_token_in_memory_mode(server: LiveServer) -> None:
    """GET /readyz needs no token; with nothing to reach in process it is ready at once."""
    r = await server.http.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "mode": "memory"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer " + "x" * 600},
    ],
    ids=["missing", "empty", "basic", "unknown", "oversized"],
)
async def test_a_missing_or_wrong_token_answers_401_json(
    server: LiveServer, org: Org, headers: dict[str, str]
) -> None:
    """Every protected route answers 401 with a JSON body and a Bearer challenge."""
    calls = [
        server.http.post("/v1/orgs", json={"name": "X"}, headers=headers),
        server.http.post("/v1/workers", json={"name": "X"}, headers=headers),
        server.http.post("/v1/jobs", json=JOB, headers=headers),
        server.http.get("/v1/jobs/job_x", headers=headers),
        server.http.post("/v1/jobs/job_x/cancel", headers=headers),
        server.http.get("/v1/workers/wrk_x", headers=headers),
    ]
    for call in calls:
        r = await call
        assert error_code(r, 401) == "unauthenticated"
        assert r.headers["www-authenticate"].lower().startswith("bearer")


PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
"""Routes that answer without a token."""

CONSOLE = {Role.ORG, Role.DISPATCHER}
"""The organisation's key and its dispatchers: the lists and the hand-made changes."""

GEOREPORT = {
    ("GET", "/open311/v2/discovery.{fmt}"),
    ("GET", "/open311/v2/services.{fmt}"),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"),
    ("GET", "/open311/v2/requests.{fmt}"),
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"),
    ("GET", "/open311/v2/tokens/{token}.{fmt}"),
    ("POST", "/open311/v2/requests.{fmt}"),
}
"""Open311 GeoReport: reads are open, a post carries its ``api_key`` in the form
(tests/mobile_api/test_open311_api.py checks both)."""

ROLES_OF: dict[tuple[str, str], set[Role]] = {
    ("POST", "/v1/orgs"): {Role.ADMIN},
    ("POST", "/v1/workers"): {Role.ORG},
    ("GET", "/v1/workers"): CONSOLE,
    ("GET", "/v1/workers/{worker_id}"): CONSOLE,
    ("POST", "/v1/workers/{worker_id}/status"): CONSOLE,
    ("POST", "/v1/jobs"): {Role.ORG},
    ("GET", "/v1/jobs"): CONSOLE,
    ("GET", "/v1/jobs/{job_id}"): CONSOLE,
    ("GET", "/v1/jobs/{job_id}/candidates"): CONSOLE,
    ("POST", "/v1/jobs/{job_id}/cancel"): CONSOLE,
    ("POST", "/v1/jobs/{job_id}/assign"): CONSOLE,
    ("POST", "/v1/jobs/{job_id}/reoffer"): CONSOLE,
    ("POST", "/v1/dispatchers"): {Role.ORG},
    ("GET", "/v1/dispatchers"): {Role.ORG},
    ("DELETE", "/v1/dispatchers/{dispatcher_id}"): {Role.ORG},
    ("GET", "/v1/services"): {Role.ORG},
    ("PUT", "/v1/services/{service_code}"): {Role.ORG},
    ("DELETE", "/v1/services/{service_code}"): {Role.ORG},
    ("POST", "/v1/open311/keys"): {Role.ORG},
    ("DELETE", "/v1/open311/keys/{key_id}"): {Role.ORG},
}
"""The roles each protected route takes; every other role is refused 403."""

BODIES: dict[str, dict[str, Any]] = {
    "/v1/orgs": {"name": "X"},
    "/v1/workers": {"name": "X"},
    "/v1/dispatchers": {"name": "X"},
    "/v1/workers/{worker_id}/status": {"status": "off_duty"},
    "/v1/jobs/{job_id}/assign": {"worker_id": "wrk_x"},
    "/v1/jobs/{job_id}/reoffer": {},
    "/v1/open311/keys": {"name": "X"},
}


def test_every_route_says_which_roles_it_takes() -> None:
    """The role table covers the route table exactly, so a new route cannot be left out."""
    served = {(m, r.path) for r in ROUTES if isinstance(r, Route) for m in r.methods or ()}
    assert served - {("HEAD", path) for _, path in served} == PUBLIC | GEOREPORT | set(ROLES_OF)


async def test_each_route_refuses_every_role_it_does_not_take_403(
    server: LiveServer, org: Org
) -> None:
    """A valid secret of a role the route does not take answers 403; one it takes passes."""
    cred = await server.create_worker(org, "Ann")
    dispatcher = await server.create_dispatcher(org, "Dee")
    r = await server.http.post("/v1/open311/keys", json={"name": "app"}, headers=org.headers)
    secrets = {
        Role.ADMIN: ADMIN_TOKEN,
        Role.ORG: org.key,
        Role.WORKER: cred.token,
        Role.DISPATCHER: dispatcher.token,
        Role.OPEN311: r.json()["api_key"],
    }
    assert set(secrets) == set(Role), "every role is tried on every route"
    for (method, path), allowed in ROLES_OF.items():
        url = path.format(
            worker_id=cred.id,
            job_id="job_x",
            dispatcher_id="dsp_x",
            service_code="x",
            key_id="o3k_x",
        )
        for role, secret in secrets.items():
            r = await server.http.request(
                method,
                url,
                json=BODIES.get(path, JOB) if method in ("POST", "PUT") else None,
                headers={"Authorization": f"Bearer {secret}"},
            )
            if role in allowed:
                assert r.status_code not in {401, 403}, (method, path, role, r.text)
            else:
                assert error_code(r, 403) == "forbidden", (method, path, role)


async def test_another_tenants_records_are_not_found(server: LiveServer, org: Org) -> None:
    """A job or worker of another organisation answers 404 on read and cancel, unchanged."""
    rival = await server.create_org("Rival")
    job = await server.post_job(org, *PARIS)
    cred = await server.create_worker(org, "Ann")
    r = await server.http.get(f"/v1/jobs/{job['id']}", headers=rival.headers)
    assert error_code(r, 404) == "not_found"
    r = await server.http.post(f"/v1/jobs/{job['id']}/cancel", headers=rival.headers)
    assert error_code(r, 404) == "not_found"
    r = await server.http.get(f"/v1/workers/{cred.id}", headers=rival.headers)
    assert error_code(r, 404) == "not_found"
    assert (await server.get_job(org, job["id"]))["state"] == job["state"] != "cancelled"
    r = await server.http.get("/v1/jobs/job_does_not_exist", headers=org.headers)
    assert error_code(r, 404) == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{broken", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b'{"title": "x", "lat": NaN, "lng": 2.35}', 400, "invalid_json"),
        (b'{"title": "x", "lat": 48.8, "lng": Infinity}', 400, "invalid_json"),
        (b'{"title": "x", "lat": 1e400, "lng": 2.35}', 422, "invalid_body"),
        (b'{"title": "x", "lat": 91, "lng": 2.35}', 422, "invalid_body"),
        (b'{"title": "x", "lat": 48.8, "lng": -180.5}', 422, "invalid_body"),
        (b'{"title": "x", "lat": "48.8", "lng": 2.35}', 422, "invalid_body"),
        (b'{"title": "x", "lat": 48.8}', 422, "invalid_body"),
        (b'{"lat": 48.8, "lng": 2.35}', 422, "invalid_body"),
        (b'{"title": "", "lat": 48.8, "lng": 2.35}', 422, "invalid_body"),
        (b'{"title": "x", "lat": 48.8, "lng": 2.35, "colour": "red"}', 422, "invalid_body"),
        (b'{"title": "x", "lat": 48.8, "lng": 2.35, "skills": ["a b"]}', 422, "invalid_body"),
        (b'{"title": "x", "lat": 48.8, "lng": 2.35, "priority": 11}', 422, "invalid_body"),
        (b"[]", 422, "invalid_body"),
        (b"null", 422, "invalid_body"),
    ],
)
async def test_a_bad_job_body_is_refused(
    server: LiveServer, org: Org, body: bytes, status: int, code: str
) -> None:
    """Broken or non-finite JSON answers 400 and a well-formed but invalid job 422."""
    headers = {**org.headers, "Content-Type": "application/json"}
    r = await server.http.post("/v1/jobs", content=body, headers=headers)
    assert error_code(r, status) == code
    r = await server.http.get("/v1/jobs/job_x", headers=org.headers)
    assert r.status_code == 404  # the server is still serving


async def test_a_bad_body_on_the_other_routes_is_refused(server: LiveServer, org: Org) -> None:
    """Organisation, worker and cancel bodies are validated the same way."""
    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[str, dict[str, str], Any, int]] = [
        ("/v1/orgs", server.admin_headers, b"{}", 422),
        ("/v1/orgs", server.admin_headers, b'{"name": 5}', 422),
        ("/v1/workers", org.headers, b'{"name": "A", "kind": "robot"}', 422),
        ("/v1/workers", org.headers, b'{"name": "A", "skills": "electrical"}', 422),
        ("/v1/workers", org.headers, b'{"name": "A",', 400),
    ]
    for path, headers, body, status in cases:
        r = await server.http.post(path, content=body, headers={**headers, **json_headers})
        assert r.status_code == status, (path, body, r.text)
        error_code(r, status)
    job = await server.post_job(org, *PARIS)
    r = await server.http.post(
        f"/v1/jobs/{job['id']}/cancel", content=b"{oops", headers={**org.headers, **json_headers}
    )
    assert error_code(r, 400) == "invalid_json"
    assert (await server.get_job(org, job["id"]))["state"] == job["state"] != "cancelled"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_json_answers_415(
    server: LiveServer, org: Org, content_type: str
) -> None:
    """A body sent with another media type answers 415."""
    r = await server.http.post(
        "/v1/jobs",
        content=b'{"title": "x", "lat": 48.8, "lng": 2.35}',
        headers={**org.headers, "Content-Type": content_type},
    )
    assert error_code(r, 415) == "unsupported_media_type"


async def test_an_oversized_body_answers_413(server: LiveServer, org: Org) -> None:
    """A body over the limit answers 413."""
    body = b'{"title": "x", "lat": 48.8, "lng": 2.35, "description": "' + b"a" * 70_000 + b'"}'
    r = await server.http.post(
        "/v1/jobs", content=body, headers={**org.headers, "Content-Type": "application/json"}
    )
    assert error_code(r, 413) == "too_large"


async def test_unknown_routes_and_methods_answer_json(server: LiveServer, org: Org) -> None:
    """An unknown route answers 404 and a wrong method 405, both as JSON errors."""
    r = await server.http.get("/v1/nothing-here", headers=org.headers)
    assert error_code(r, 404) == "not_found"
    r = await server.http.get("/", headers=org.headers)
    assert error_code(r, 404) == "not_found"
    r = await server.http.delete("/v1/jobs", headers=org.headers)
    assert error_code(r, 405) == "method_not_allowed"


async def test_a_valid_job_is_created_with_normalised_skills(server: LiveServer, org: Org) -> None:
    """A valid job answers 201 with a Location header and lower-cased skills."""
    r = await server.http.post(
        "/v1/jobs", json={**JOB, "skills": ["Electrical", "HV"]}, headers=org.headers
    )
    assert r.status_code == 201
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["skills"] == ["electrical", "hv"]
    assert job["org_id"] == org.id
