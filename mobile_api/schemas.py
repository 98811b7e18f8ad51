"""Wire schemas: every request body and websocket message, declared once.

msgspec validates and decodes in one pass (fast enough for the location hot
path) and can emit JSON Schema for an OpenAPI document. Rules:

* Unknown fields are refused (``forbid_unknown_fields``), so a typo is an
  error rather than a silently ignored value.
* Coordinates are finite and in range; NaN is not JSON and is refused.
* ``ts`` is POSIX seconds (number) or an ISO 8601 string with a zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from dispatch.models import Availability, WorkerKind

Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0, description="WGS84 latitude")]
Lng = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0, description="WGS84 longitude")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Skills = Annotated[list[Skill], msgspec.Meta(max_length=32)]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Accuracy = Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0)]


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies."""


class CreateOrg(_Body):
    """Body of ``POST /v1/orgs``: a new organisation."""

    name: Name


class CreateWorker(_Body):
    """Body of ``POST /v1/workers``: a new technician (off duty until their phone says)."""

    name: Name
    kind: WorkerKind = WorkerKind.EMPLOYEE
    skills: Skills = msgspec.field(default_factory=list)


class CreateJob(_Body):
    """Body of ``POST /v1/jobs``: a work order at a place, for workers with every skill."""

    title: Name
    lat: Lat
    lng: Lng
    skills: Skills = msgspec.field(default_factory=list)
    priority: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    description: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    external_ref: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class CancelJob(_Body):
    """Body of ``POST /v1/jobs/{id}/cancel`` (optional: an empty body has no reason)."""

    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class CreateDispatcher(_Body):
    """Body of ``POST /v1/dispatchers``: a person in the control room."""

    name: Name


class AssignJob(_Body):
    """Body of ``POST /v1/jobs/{id}/assign``: give the job to this worker now.

    ``override`` assigns a worker the matching rules leave out (logged).
    """

    worker_id: Ident
    override: bool = False


class ReofferJob(_Body):
    """Body of ``POST /v1/jobs/{id}/reoffer`` (optional): the new wave's radius."""

    radius_m: Annotated[float, msgspec.Meta(gt=0.0, le=200_000.0)] | None = None


class SetWorkerStatus(_Body):
    """Body of ``POST /v1/workers/{id}/status``: what the dispatcher sets."""

    status: Availability


# -- websocket: phone → server ----------------------------------------------


class _Msg(msgspec.Struct, forbid_unknown_fields=True, tag_field="type"):
    """Base of phone messages; ``type`` selects the class."""


class LocationMsg(_Msg, tag="location"):
    """A position fix; ``ts`` defaults to the time of arrival."""

    lat: Lat
    lng: Lng
    accuracy_m: Accuracy | None = None
    ts: float | datetime | None = None


class StatusMsg(_Msg, tag="status"):
    """The worker goes available or off duty."""

    status: Availability


class AcceptMsg(_Msg, tag="accept"):
    """Take an offer: the first accept wins; the winner's repeat is answered ``assigned``."""

    offer_id: Ident


class DeclineMsg(_Msg, tag="decline"):
    """Refuse an offer; the wave goes on without this worker."""

    offer_id: Ident


class ProgressMsg(_Msg, tag="progress"):
    """The assigned job moves on: en route, on site, completed."""

    job_id: Ident
    state: Annotated[str, msgspec.Meta(pattern=r"^(en_route|on_site|completed)$")]


class ReleaseMsg(_Msg, tag="release"):
    """Hand the assigned job back before arriving on site; it is offered to others."""

    job_id: Ident
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class PingMsg(_Msg, tag="ping"):
    """An application-level ping; answered with ``pong`` (for apps without ws pings)."""


PhoneMessage = LocationMsg | StatusMsg | AcceptMsg | DeclineMsg | ProgressMsg | ReleaseMsg | PingMsg

PHONE_TYPES = ("location", "status", "accept", "decline", "progress", "release", "ping")

phone_decoder: msgspec.json.Decoder[PhoneMessage] = msgspec.json.Decoder(PhoneMessage)
"""Decodes one phone frame; raises ``msgspec.DecodeError`` / ``ValidationError``."""

encoder = msgspec.json.Encoder()
"""Encodes every outgoing frame and response body."""


def ts_seconds(ts: float | datetime | None) -> float | None:
    """A message's ``ts`` as POSIX seconds; a naive datetime is refused."""
    if ts is None or isinstance(ts, float | int):
        return None if ts is None else float(ts)
    if ts.tzinfo is None:
        raise ValueError("ts needs a time zone (e.g. a trailing Z)")
    return ts.timestamp()
