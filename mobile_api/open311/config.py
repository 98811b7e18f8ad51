"""The organisation's side: ``/v1/services`` and ``/v1/open311/keys`` (organisation key).

``PUT /v1/services/{service_code}`` creates (201) or replaces (200) a
service with its attributes, checked by ``dispatch.open311.validation``
(422 naming the fault); ``GET /v1/services`` lists them; ``DELETE`` removes
one (204). ``POST /v1/open311/keys`` issues a client key for an app that
posts citizens' requests — shown once, stored hashed, good for ``POST
requests`` and nothing else — and ``DELETE /v1/open311/keys/{id}`` revokes
it at once (204).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from dispatch.notices import iso
from dispatch.open311.models import Attribute, AttributeValue, Datatype, ServiceDefinition
from dispatch.open311.validation import check_code

from ..auth import Role
from ..errors import json_response
from ..resources.common import caller, decode_body, runtime
from ..schemas import Name, Skills
from .views import attribute_view

Text = Annotated[str, msgspec.Meta(max_length=4000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]


class ValueBody(msgspec.Struct, forbid_unknown_fields=True):
    """One option of a list attribute."""

    key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    name: Name


class AttributeBody(msgspec.Struct, forbid_unknown_fields=True):
    """One attribute of a service, with the GeoReport fields."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    description: Text
    datatype: Datatype = Datatype.STRING
    required: bool = False
    variable: bool = True
    datatype_description: Short = ""
    order: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    values: Annotated[list[ValueBody], msgspec.Meta(max_length=200)] = msgspec.field(
        default_factory=list
    )


class ServiceBody(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``PUT /v1/services/{service_code}``."""

    service_name: Name
    description: Text = ""
    group: Short = ""
    keywords: Annotated[list[Name], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    skills: Skills = msgspec.field(default_factory=list)
    attributes: Annotated[list[AttributeBody], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )


class CreateKey(msgspec.Struct, forbid_unknown_fields=True):
    """Body of ``POST /v1/open311/keys``: which app the key is for."""

    name: Name


def _definition(org_id: str, code: str, body: ServiceBody) -> ServiceDefinition:
    attributes = tuple(
        Attribute(
            code=a.code,
            datatype=a.datatype,
            description=a.description,
            required=a.required,
            variable=a.variable,
            datatype_description=a.datatype_description,
            order=a.order if a.order is not None else i + 1,
            values=tuple(AttributeValue(v.key, v.name) for v in a.values),
        )
        for i, a in enumerate(body.attributes)
    )
    return ServiceDefinition(
        org_id=org_id,
        code=code,
        name=body.service_name,
        description=body.description,
        group=body.group,
        keywords=tuple(k.replace(",", " ").strip() for k in body.keywords),
        skills=frozenset(body.skills),
        attributes=attributes,
    )


def _order(attr: Attribute) -> int:
    return attr.order


def stored_view(service: ServiceDefinition) -> dict[str, Any]:
    """A service as the organisation stored it (``/v1/services``)."""
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "group": service.group,
        "keywords": list(service.keywords),
        "skills": sorted(service.skills),
        "attributes": [attribute_view(a) for a in sorted(service.attributes, key=_order)],
        "created_at": iso(service.created_at),
        "updated_at": iso(service.updated_at),
    }


async def put_service(request: Request) -> Response:
    """``PUT /v1/services/{service_code}``: 201 when new, 200 when replaced."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    code = check_code(request.path_params["service_code"])
    body = await decode_body(request, ServiceBody)
    stored, created = await rt.open311.put_service(_definition(org_id, code, body))
    return json_response(stored_view(stored), 201 if created else 200)


async def list_services(request: Request) -> Response:
    """``GET /v1/services``: the organisation's services, by code."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    return json_response([stored_view(s) for s in await rt.open311.services(org_id)])


async def delete_service(request: Request) -> Response:
    """``DELETE /v1/services/{service_code}``: 204; 404 if there is none."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    await rt.open311.delete_service(org_id, request.path_params["service_code"])
    return Response(status_code=204)


async def create_key(request: Request) -> Response:
    """``POST /v1/open311/keys``: ``{"id","name","api_key"}``, the key shown once; 201."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    body = await decode_body(request, CreateKey)
    key, secret = await rt.open311.create_key(org_id, body.name)
    return json_response({"id": key.id, "name": key.name, "api_key": secret}, 201)


async def revoke_key(request: Request) -> Response:
    """``DELETE /v1/open311/keys/{key_id}``: 204; the key stops working at once."""
    rt = runtime(request)
    org_id = (await caller(request, Role.ORG)).tenant
    await rt.open311.revoke_key(org_id, request.path_params["key_id"])
    return Response(status_code=204)
