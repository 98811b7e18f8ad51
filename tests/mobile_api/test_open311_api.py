"""Open311 GeoReport v2 over HTTP: every endpoint in JSON and XML, every error the spec names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.mobile_api.live import LiveServer
from tests.mobile_api.open311_client import (
    POTHOLE,
    city,
    errors_of,
    post_report,
    report,
    texts,
    xml,
)

FORMATS = ["json", "xml"]
SPEC = "http://wiki.open311.org/GeoReport_v2"
NO_DEPTH: dict[str, Any] = {"attribute[depth]": None}
PRIVATE = ("citizen@example.org", "Marge", "Simpson", "555 0100")


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- discovery and services ---------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_discovery_names_the_specification_and_both_formats(
    server: LiveServer, fmt: str
) -> None:
    """Discovery lists one GeoReport v2 endpoint at /open311/v2 offering XML and JSON."""
    r = await server.http.get(f"/open311/v2/discovery.{fmt}")
    assert r.status_code == 200
    if fmt == "json":
        endpoint = r.json()["endpoints"][0]
        formats = endpoint["formats"]
        assert r.json()["changeset"]
    else:
        root = xml(r)
        assert root.tag == "discovery"
        node = root.find("endpoints/endpoint")
        assert node is not None
        endpoint = texts(node)
        formats = [f.text for f in node.findall("formats/format")]
    assert endpoint["specification"] == SPEC
    assert endpoint["url"] == f"{server.base_url}/open311/v2"
    assert sorted(formats) == ["application/json", "text/xml"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_services_are_realtime_with_comma_separated_keywords(
    server: LiveServer, fmt: str
) -> None:
    """GET services lists the organisation's services with the spec's fields."""
    c = await city(server)
    r = await server.http.get(f"/open311/v2/services.{fmt}", params=c.jurisdiction)
    assert r.status_code == 200
    if fmt == "json":
        (service,) = r.json()
    else:
        root = xml(r)
        assert root.tag == "services"
        (node,) = root.findall("service")
        service = texts(node)
        service["metadata"] = service["metadata"] == "true"
    assert service == {
        "service_code": "pothole",
        "service_name": "Pothole",
        "description": "A hole in the road",
        "metadata": True,
        "type": "realtime",
        "keywords": "road,hole",
        "group": "streets",
    }


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_service_definition_is_its_code_and_attributes(
    server: LiveServer, fmt: str
) -> None:
    """GET services/{code} answers {service_code, attributes} with values for list types."""
    c = await city(server)
    r = await server.http.get(f"/open311/v2/services/pothole.{fmt}", params=c.jurisdiction)
    assert r.status_code == 200
    if fmt == "json":
        body = r.json()
        assert body["service_code"] == "pothole"
        depth, lanes = body["attributes"]
        assert depth == {
            "variable": True,
            "code": "depth",
            "datatype": "number",
            "required": True,
            "datatype_description": "",
            "order": 1,
            "description": "How deep is it, in cm?",
            "values": [],
        }
        assert lanes["values"] == [{"key": "l", "name": "Left"}, {"key": "r", "name": "Right"}]
    else:
        root = xml(r)
        assert root.tag == "service_definition"
        assert root.findtext("service_code") == "pothole"
        attrs = root.findall("attributes/attribute")
        assert [a.findtext("code") for a in attrs] == ["depth", "lanes"]
        assert attrs[0].findtext("required") == "true"
        assert attrs[1].findtext("datatype") == "multivaluelist"
        keys = [v.findtext("key") for v in attrs[1].findall("values/value")]
        assert keys == ["l", "r"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("services", {}, 400, "jurisdiction_id was not provided"),
        ("services", {"jurisdiction_id": "org_nope"}, 404, "jurisdiction"),
        ("services/pothole", {}, 400, "jurisdiction_id was not provided"),
        ("services/pothole", {"jurisdiction_id": "org_nope"}, 404, "jurisdiction"),
        ("services/nothing", None, 404, "service nothing not found"),
        ("requests", {}, 400, "jurisdiction_id was not provided"),
        ("requests", {"jurisdiction_id": "org_nope"}, 404, "jurisdiction"),
        ("requests/req_nope", None, 404, "service request req_nope not found"),
        ("requests/req_nope", {}, 400, "jurisdiction_id was not provided"),
        ("tokens/tok_nope", None, 404, "token tok_nope not found"),
        ("tokens/tok_nope", {"jurisdiction_id": "org_nope"}, 404, "jurisdiction"),
    ],
)
async def test_reads_answer_the_specs_errors(
    server: LiveServer,
    fmt: str,
    path: str,
    params: dict[str, str] | None,
    status: int,
    says: str,
) -> None:
    """A missing jurisdiction is 400; an unknown jurisdiction, code, request or token is 404."""
    c = await city(server)
    r = await server.http.get(
        f"/open311/v2/{path}.{fmt}", params=c.jurisdiction if params is None else params
    )
    assert r.status_code == status
    (err,) = errors_of(r, fmt)
    assert err["code"] == status
    assert says in err["description"]


async def test_an_unknown_format_is_not_found(server: LiveServer) -> None:
    """Only .json and .xml are served."""
    c = await city(server)
    r = await server.http.get("/open311/v2/services.yaml", params=c.jurisdiction)
    assert r.status_code == 404
    assert r.json()[0]["code"] == 404


# -- the organisation's services and keys -------------------------------------------


async def test_a_service_is_created_replaced_listed_and_deleted(server: LiveServer) -> None:
    """PUT answers 201 then 200 with the stored definition; GET lists; DELETE forgets it."""
    org = await server.create_org()
    r = await server.http.put("/v1/services/pothole", json=POTHOLE, headers=org.headers)
    assert r.status_code == 201
    stored = r.json()
    assert stored["service_code"] == "pothole"
    assert stored["skills"] == ["asphalt"]
    assert [a["code"] for a in stored["attributes"]] == ["depth", "lanes"]
    again = {**POTHOLE, "service_name": "Road damage", "attributes": []}
    r = await server.http.put("/v1/services/pothole", json=again, headers=org.headers)
    assert r.status_code == 200
    assert r.json()["service_name"] == "Road damage"
    assert r.json()["created_at"] == stored["created_at"]
    r = await server.http.get("/v1/services", headers=org.headers)
    assert [s["service_name"] for s in r.json()] == ["Road damage"]
    r = await server.http.delete("/v1/services/pothole", headers=org.headers)
    assert r.status_code == 204
    r = await server.http.delete("/v1/services/pothole", headers=org.headers)
    assert r.status_code == 404
    r = await server.http.get("/v1/services", headers=org.headers)
    assert r.json() == []


@pytest.mark.parametrize(
    ("code", "body", "says"),
    [
        ("bad.code", POTHOLE, "service_code"),
        (
            "pothole",
            {
                **POTHOLE,
                "attributes": [{"code": "x", "description": "d", "datatype": "singlevaluelist"}],
            },
            "a list needs",
        ),
        (
            "pothole",
            {**POTHOLE, "attributes": [{"code": "x", "description": "d", "datatype": "colour"}]},
            "datatype",
        ),
        ("pothole", {**POTHOLE, "colour": "red"}, "colour"),
    ],
)
async def test_a_malformed_service_is_refused(
    server: LiveServer, code: str, body: dict[str, object], says: str
) -> None:
    """Unknown datatypes, lists without values, bad codes and unknown fields answer 422."""
    org = await server.create_org()
    r = await server.http.put(f"/v1/services/{code}", json=body, headers=org.headers)
    assert r.status_code == 422, r.text
    assert says in r.json()["error"]["message"]


async def test_an_open311_key_posts_requests_and_nothing_else(server: LiveServer) -> None:
    """The client key works for POST requests only; other calls answer 403; revoking ends it."""
    c = await city(server)
    assert c.api_key.startswith("fco_")
    bearer = {"Authorization": f"Bearer {c.api_key}"}
    for method, path in (("GET", "/v1/services"), ("POST", "/v1/jobs"), ("POST", "/v1/workers")):
        r = await server.http.request(method, path, headers=bearer, json={})
        assert r.status_code == 403, (path, r.text)
        assert c.api_key not in r.text
    r = await server.http.post("/v1/open311/keys", json={"name": "x"}, headers=bearer)
    assert r.status_code == 403
    assert (await post_report(server, c)).status_code == 201
    r = await server.http.delete(f"/v1/open311/keys/{c.key_id}", headers=c.org.headers)
    assert r.status_code == 204
    r = await post_report(server, c)
    assert r.status_code == 403
    r = await server.http.delete(f"/v1/open311/keys/{c.key_id}", headers=c.org.headers)
    assert r.status_code == 404


# -- posting requests ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_posted_request_answers_its_id_and_becomes_a_job(
    server: LiveServer, fmt: str
) -> None:
    """POST requests answers a list of one with the id; the job carries it as external_ref."""
    c = await city(server)
    r = await post_report(
        server, c, fmt, **{"attribute[lanes][]": ["l", "r"], "address_string": "Rue de Rivoli"}
    )
    assert r.status_code == 201, r.text
    if fmt == "json":
        (answer,) = r.json()
    else:
        root = xml(r)
        assert root.tag == "service_requests"
        (node,) = root.findall("request")
        answer = texts(node)
    assert answer["service_notice"] == ""
    assert answer["account_id"] == "acct-7"
    request_id = answer["service_request_id"]
    r = await server.http.get(f"/open311/v2/tokens/{answer['token']}.{fmt}", params=c.jurisdiction)
    assert r.status_code == 200
    if fmt == "json":
        assert r.json() == [{"service_request_id": request_id, "token": answer["token"]}]
    else:
        assert texts(xml(r).findall("token")[0])["service_request_id"] == request_id
    # The job the dispatcher sees names the request.
    jobs = server.runtime.service.stores.jobs
    request = await server.runtime.open311.request(c.org.id, request_id)
    job = await jobs.get_job(c.org.id, request.job_id)
    assert job is not None
    assert (job.external_ref, job.title, job.skills) == (
        request_id,
        "Pothole",
        frozenset({"asphalt"}),
    )
    assert job.description == "Deep hole by the bus stop"
    assert request.attributes == {"depth": "12", "lanes": ("l", "r")}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"api_key": None}, 403, "api_key was not provided"),
        ({"api_key": "fco_not-a-key"}, 403, "not a valid Open311 client key"),
        ({"api_key": "not-even-prefixed"}, 403, "not a valid Open311 client key"),
        ({"api_key": "fco_" + "x" * 600}, 403, "not a valid Open311 client key"),
        ({"service_code": None}, 400, "service_code was not provided"),
        ({"service_code": "nothing"}, 404, "service nothing not found"),
        ({"jurisdiction_id": "org_other"}, 404, "jurisdiction org_other not found"),
        ({"lat": "north"}, 400, "lat must be a decimal number"),
        ({"lat": "91"}, 400, "lat must lie between"),
        ({"long": None}, 400, "lat and long go together"),
        ({"lat": None, "long": None}, 400, "lat and long, or address_string"),
        (
            {"lat": None, "long": None, "address_string": "742 Evergreen Terrace"},
            400,
            "geocodes no address",
        ),
        ({"attribute[depth]": None}, 400, "attribute depth is required"),
        ({"attribute[depth]": "deep"}, 400, "attribute depth must be a number"),
        ({"attribute[lanes][]": ["l", "x"]}, 400, "lanes: not one of its values"),
        ({"attribute[colour]": "red"}, 400, "attribute colour is not asked"),
        ({"description": "x" * 4001}, 400, "description is over 4000"),
    ],
)
async def test_a_bad_post_answers_the_specs_error_without_echoing_the_key(
    server: LiveServer, fmt: str, fields: dict[str, object], status: int, says: str
) -> None:
    """Key faults are 403, unknown codes or jurisdictions 404, anything malformed 400."""
    c = await city(server)
    r = await post_report(server, c, fmt, **fields)
    assert r.status_code == status, r.text
    (err,) = errors_of(r, fmt)
    assert err["code"] == status
    assert says in err["description"]
    assert c.api_key not in r.text
    assert "fco_not-a-key" not in r.text


async def test_an_organisation_key_cannot_post_open311_requests(server: LiveServer) -> None:
    """Only an Open311 client key posts; the organisation's own key answers 403."""
    c = await city(server)
    r = await post_report(server, c, api_key=c.org.key)
    assert r.status_code == 403
    assert c.org.key not in r.text


async def test_a_post_that_is_not_a_form_is_refused(server: LiveServer) -> None:
    """A JSON body to POST requests answers 400 saying to send a form."""
    c = await city(server)
    r = await server.http.post("/open311/v2/requests.json", json=report(c))
    assert r.status_code == 400
    assert "x-www-form-urlencoded" in r.json()[0]["description"]
    assert c.api_key not in r.text


# -- reading requests ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_request_reads_back_without_the_citizens_details(
    server: LiveServer, fmt: str
) -> None:
    """GET requests/{id} shows the spec's fields, awaiting a crew, and no contact details."""
    c = await city(server)
    posted = await post_report(server, c, zipcode="75001", media_url="https://img.example/1")
    request_id = posted.json()[0]["service_request_id"]
    r = await server.http.get(f"/open311/v2/requests/{request_id}.{fmt}", params=c.jurisdiction)
    assert r.status_code == 200
    if fmt == "json":
        (view,) = r.json()
    else:
        root = xml(r)
        assert root.tag == "service_requests"
        (node,) = root.findall("request")
        view = texts(node)
        view["lat"], view["long"] = float(view["lat"]), float(view["long"])
        view["expected_datetime"] = view["expected_datetime"] or None
    assert list(view) == [
        "service_request_id", "status", "status_notes", "service_name", "service_code",
        "description", "agency_responsible", "service_notice", "requested_datetime",
        "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
        "long", "media_url",
    ]  # fmt: skip
    assert view["status"] == "open"
    assert view["status_notes"] == "awaiting a crew"
    assert view["agency_responsible"] == "Springfield"
    assert view["expected_datetime"] is None
    assert (view["lat"], view["long"]) == (48.8566, 2.3522)
    assert (view["zipcode"], view["media_url"]) == ("75001", "https://img.example/1")
    assert view["requested_datetime"].endswith("Z")
    for private in (*PRIVATE, "acct-7", c.api_key):
        assert private not in r.text


@pytest.mark.parametrize("fmt", FORMATS)
async def test_requests_are_filtered_as_the_spec_says(server: LiveServer, fmt: str) -> None:
    """Ids override the other filters; codes and statuses take comma lists; dates include
    both ends and need a zone; the default window is the most recent 90 days."""
    c = await city(server)
    graffiti = {**POTHOLE, "service_name": "Graffiti", "attributes": []}
    r = await server.http.put("/v1/services/graffiti", json=graffiti, headers=c.org.headers)
    assert r.status_code == 201
    # A technician in reach keeps the jobs open (offered), so one can be cancelled.
    await server.on_duty(c.org, "tech", ("asphalt",), (48.8566, 2.3522))
    first = (await post_report(server, c)).json()[0]["service_request_id"]
    second = (await post_report(server, c, service_code="graffiti", **NO_DEPTH)).json()[0][
        "service_request_id"
    ]
    cancelled = (await post_report(server, c)).json()[0]["service_request_id"]
    job_id = (await server.runtime.open311.request(c.org.id, cancelled)).job_id
    await server.cancel_job(c.org, job_id)

    async def ids(**params: str) -> list[str]:
        r = await server.http.get(
            f"/open311/v2/requests.{fmt}", params={**c.jurisdiction, **params}
        )
        assert r.status_code == 200, r.text
        if fmt == "json":
            return [v["service_request_id"] for v in r.json()]
        return [n.findtext("service_request_id") or "" for n in xml(r).findall("request")]

    assert await ids() == [cancelled, second, first]
    assert await ids(service_code="graffiti") == [second]
    assert await ids(service_code="graffiti, pothole") == [cancelled, second, first]
    assert await ids(status="closed") == [cancelled]
    assert await ids(status="open") == [second, first]
    assert await ids(status="open,closed", service_code="pothole") == [cancelled, first]
    assert await ids(service_request_id=f"{first},{second}", status="closed") == [second, first]
    now = datetime.now(UTC)
    assert len(await ids(start_date=stamp(now - timedelta(hours=1)))) == 3
    assert await ids(end_date=stamp(now - timedelta(hours=1))) == []
    assert await ids(start_date=stamp(now + timedelta(hours=1))) == []
    window = {
        "start_date": stamp(now - timedelta(days=89)),
        "end_date": stamp(now + timedelta(hours=1)),
    }
    assert len(await ids(**window)) == 3
    zoned = (now + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))).isoformat()
    assert len(await ids(end_date=zoned)) == 3
    # Both ends are inclusive at the second the views show.
    shown = {
        v["service_request_id"]: v["requested_datetime"]
        for v in (await server.http.get("/open311/v2/requests.json", params=c.jurisdiction)).json()
    }
    assert first in await ids(end_date=shown[first], start_date=shown[first])
    assert cancelled in await ids(start_date=shown[cancelled], end_date=shown[cancelled])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"start_date": "2026-01-01T00:00:00"}, "time zone"),
        ({"end_date": "last week"}, "ISO 8601"),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "90 days"),
        ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "before"),
        ({"status": "pending"}, "status takes open and closed"),
    ],
)
async def test_malformed_filters_answer_400(
    server: LiveServer, fmt: str, params: dict[str, str], says: str
) -> None:
    """Dates without a zone, spans over 90 days, reversed ranges and unknown statuses are 400."""
    c = await city(server)
    r = await server.http.get(f"/open311/v2/requests.{fmt}", params={**c.jurisdiction, **params})
    assert r.status_code == 400
    (err,) = errors_of(r, fmt)
    assert err["code"] == 400
    assert says in err["description"]


async def test_another_jurisdictions_requests_are_not_found(server: LiveServer) -> None:
    """A request id of one organisation is unknown under another's jurisdiction_id."""
    c, other = await city(server), await city(server, "Shelbyville")
    request_id = (await post_report(server, c)).json()[0]["service_request_id"]
    r = await server.http.get(f"/open311/v2/requests/{request_id}.json", params=other.jurisdiction)
    assert r.status_code == 404
    r = await server.http.get(
        "/open311/v2/requests.json", params={**other.jurisdiction, "service_request_id": request_id}
    )
    assert r.json() == []


async def test_an_oversized_post_is_refused_and_the_connection_closed(server: LiveServer) -> None:
    """A form over the body cap answers 413 in the spec's error body, closing the connection."""
    c = await city(server)
    r = await server.http.post("/open311/v2/requests.xml", data=report(c, description="x" * 70_000))
    assert r.status_code == 413
    assert errors_of(r, "xml")[0]["code"] == 413
    assert r.headers["connection"] == "close"
    assert (await post_report(server, c)).status_code == 201  # and it serves the next one
