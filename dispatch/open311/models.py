"""Open311 records: service definitions, client keys and service requests.

Rules for callers: times are POSIX seconds from the injected clock; every
record carries its organisation (the GeoReport ``jurisdiction_id``) and every
lookup is scoped by it. A ``ServiceRequest`` keeps the citizen's contact
details for the organisation only: views for GeoReport readers never show
them (``status.request_view`` takes no contact field).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Datatype(StrEnum):
    """The GeoReport attribute datatypes."""

    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    TEXT = "text"
    SINGLEVALUELIST = "singlevaluelist"
    MULTIVALUELIST = "multivaluelist"


LIST_TYPES = frozenset({Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST})
"""Datatypes whose answers are keys of the attribute's ``values``."""


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """One option of a list attribute: its key (what is submitted) and its name (shown)."""

    key: str
    name: str


@dataclass(frozen=True, slots=True)
class Attribute:
    """One question of a service definition."""

    code: str
    datatype: Datatype
    description: str
    required: bool = False
    variable: bool = True
    """False: information shown to the citizen, never answered."""
    datatype_description: str = ""
    order: int = 1
    values: tuple[AttributeValue, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """A kind of request an organisation takes, and the skills its jobs require."""

    org_id: str
    code: str
    name: str
    description: str = ""
    group: str = ""
    keywords: tuple[str, ...] = ()
    skills: frozenset[str] = frozenset()
    attributes: tuple[Attribute, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def metadata(self) -> bool:
        """Whether the service has attributes (GeoReport's ``metadata``)."""
        return bool(self.attributes)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """An Open311 client (a citizen app) of one organisation; its secret is stored hashed."""

    id: str
    org_id: str
    name: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Contact:
    """Who reported a request: for the organisation, never shown to GeoReport readers."""

    email: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    device_id: str = ""
    account_id: str = ""


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    """A citizen's request as stored: where, what, and the job dispatched for it."""

    id: str
    org_id: str
    token: str
    service_code: str
    service_name: str
    job_id: str
    lat: float
    long: float
    requested_at: float
    description: str = ""
    address: str = ""
    address_id: str = ""
    zipcode: str = ""
    media_url: str = ""
    attributes: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)
    contact: Contact = field(default_factory=Contact)
    client_id: str = ""
    """The ``ClientKey`` that posted it."""
