"""The GeoReport views of services and definitions (a request's is ``dispatch.open311.status``).

Discovery lists this server's one GeoReport endpoint; ``CHANGESET`` moves
whenever what it answers changes shape.
"""

from __future__ import annotations

from typing import Any

from dispatch.open311.models import Attribute, ServiceDefinition

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-12-02T00:00:00Z"
"""When this server's GeoReport endpoint last changed what it answers."""


def service_view(service: ServiceDefinition) -> dict[str, Any]:
    """A ``service`` of ``GET services``: ``realtime``, keywords as one comma list."""
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "metadata": service.metadata,
        "type": "realtime",
        "keywords": ",".join(service.keywords),
        "group": service.group,
    }


def attribute_view(attr: Attribute) -> dict[str, Any]:
    """One ``attribute`` of a service definition, with the specification's fields."""
    return {
        "variable": attr.variable,
        "code": attr.code,
        "datatype": attr.datatype.value,
        "required": attr.required,
        "datatype_description": attr.datatype_description,
        "order": attr.order,
        "description": attr.description,
        "values": [{"key": v.key, "name": v.name} for v in attr.values],
    }


def definition_view(service: ServiceDefinition) -> dict[str, Any]:
    """A ``service_definition``: the code and its attributes, in their order."""
    attributes = sorted(service.attributes, key=lambda a: a.order)
    return {"service_code": service.code, "attributes": [attribute_view(a) for a in attributes]}


def discovery_view(base_url: str) -> dict[str, Any]:
    """The Service Discovery document for the GeoReport endpoint at ``base_url``."""
    return {
        "changeset": CHANGESET,
        "contact": "the organisation that gave you its jurisdiction_id",
        "key_service": "an organisation issues Open311 client keys with POST /v1/open311/keys",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": base_url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
