"""Helpers of the Open311 tests: a city set up over HTTP, and XML read safely.

``city(live)`` creates an organisation, a ``pothole`` service with
attributes and an Open311 client key; ``xml(response)`` checks the UTF-8
declaration and parses the body with defusedxml (no entity expansion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element  # a type only: parsing is defusedxml's

import httpx
from defusedxml.ElementTree import fromstring

from tests.mobile_api.live import LiveServer, Org

XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'

POTHOLE: dict[str, Any] = {
    "service_name": "Pothole",
    "description": "A hole in the road",
    "group": "streets",
    "keywords": ["road", "hole"],
    "skills": ["asphalt"],
    "attributes": [
        {
            "code": "depth",
            "description": "How deep is it, in cm?",
            "datatype": "number",
            "required": True,
            "order": 1,
        },
        {
            "code": "lanes",
            "description": "Which lanes are blocked?",
            "datatype": "multivaluelist",
            "order": 2,
            "values": [{"key": "l", "name": "Left"}, {"key": "r", "name": "Right"}],
        },
    ],
}


@dataclass(frozen=True)
class City:
    """An organisation with the pothole service and an Open311 client key."""

    org: Org
    api_key: str
    key_id: str

    @property
    def jurisdiction(self) -> dict[str, str]:
        return {"jurisdiction_id": self.org.id}


async def city(live: LiveServer, name: str = "Springfield") -> City:
    org = await live.create_org(name)
    r = await live.http.put("/v1/services/pothole", json=POTHOLE, headers=org.headers)
    assert r.status_code == 201, r.text
    r = await live.http.post("/v1/open311/keys", json={"name": "City app"}, headers=org.headers)
    assert r.status_code == 201, r.text
    return City(org, r.json()["api_key"], r.json()["id"])


def report(c: City, **fields: Any) -> dict[str, Any]:
    """A valid pothole report's form fields, with ``fields`` added or replaced."""
    form: dict[str, Any] = {
        "api_key": c.api_key,
        "jurisdiction_id": c.org.id,
        "service_code": "pothole",
        "lat": "48.8566",
        "long": "2.3522",
        "description": "Deep hole by the bus stop",
        "attribute[depth]": "12",
        "email": "citizen@example.org",
        "first_name": "Marge",
        "last_name": "Simpson",
        "phone": "+1 555 0100",
        "account_id": "acct-7",
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


async def post_report(
    live: LiveServer, c: City, fmt: str = "json", **fields: Any
) -> httpx.Response:
    return await live.http.post(f"/open311/v2/requests.{fmt}", data=report(c, **fields))


def xml(response: httpx.Response) -> Element:
    """The response's XML root, after checking it starts with its UTF-8 declaration."""
    assert response.headers["content-type"].startswith("text/xml"), response.headers
    assert response.content.startswith(XML_DECLARATION), response.content[:60]
    root: Element = fromstring(response.content)
    return root


def texts(element: Element) -> dict[str, Any]:
    """Child element names to their text ("" for an empty element)."""
    return {child.tag: child.text or "" for child in element}


def errors_of(response: httpx.Response, fmt: str) -> list[dict[str, Any]]:
    """The spec's error list of a JSON or XML error response."""
    if fmt == "json":
        body: list[dict[str, Any]] = response.json()
        return body
    root = xml(response)
    assert root.tag == "errors"
    return [{"code": int(texts(e)["code"]), "description": texts(e)["description"]} for e in root]
