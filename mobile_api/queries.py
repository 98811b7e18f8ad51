"""Query strings of the list calls: filters, limits and opaque cursors.

``worker_query`` and ``job_query`` turn the query string of ``GET
/v1/workers`` and ``GET /v1/jobs`` into ``dispatch.listing`` queries; a bad
or unknown parameter is ``ApiError`` 400 ``invalid_query`` (a typo is an
error, not a filter silently ignored). A parameter given twice, or as a
comma-separated list, means any of its values.

The cursor is opaque to clients: pass the ``next_cursor`` of one page as
``cursor`` to get the next. It is the page's last id, URL-safe base64
encoded; it carries no organisation, because every list is scoped by the
caller's own.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import QueryParams

from dispatch.listing import BBox, JobQuery, WorkerQuery
from dispatch.models import Availability, JobState, WorkerKind

from .errors import ApiError

E = TypeVar("E", bound=StrEnum)
V = TypeVar("V")

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
"""The largest page a list call returns (a larger ``limit`` is refused)."""

_WORKER_PARAMS = frozenset({"limit", "cursor", "status", "kind", "skill", "bbox", "updated_since"})
_JOB_PARAMS = frozenset({"limit", "cursor", "state", "skill", "bbox", "updated_since"})


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_query", message)


def encode_cursor(last_id: str | None) -> str | None:
    """The opaque cursor of the page after ``last_id`` (None: there is none)."""
    if last_id is None:
        return None
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor stands for; 400 if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        last_id = raw.decode()
    except (binascii.Error, ValueError):
        raise _bad("cursor is not a cursor this server gave out") from None
    if not last_id or len(last_id) > 64 or not last_id.isprintable():
        raise _bad("cursor is not a cursor this server gave out")
    return last_id


def _values(params: QueryParams, name: str) -> list[str]:
    return [v for raw in params.getlist(name) for v in raw.split(",") if v]


def _enums(params: QueryParams, name: str, kind: type[E]) -> frozenset[E]:
    found: set[E] = set()
    for value in _values(params, name):
        try:
            found.add(kind(value))
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise _bad(f"{name} {value!r} is not one of {allowed}") from None
    return frozenset(found)


def _single(params: QueryParams, name: str, parse: Callable[[str], V]) -> V | None:
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise _bad(f"{name} is given more than once")
    try:
        return parse(values[0])
    except ValueError as exc:
        raise _bad(f"{name}: {exc}") from None


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"must be between 1 and {MAX_LIMIT}")
    return value


def _since(text: str) -> float:
    """POSIX seconds, or ISO 8601 with a zone."""
    try:
        value = float(text)
    except ValueError:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            raise ValueError("an ISO 8601 time needs a zone (e.g. a trailing Z)") from None
        return stamp.timestamp()
    if not math.isfinite(value):
        raise ValueError("must be a finite number of seconds")
    return value


def _skill(text: str) -> str:
    skill = text.strip().lower()
    if not skill or len(skill) > 64:
        raise ValueError("must be a skill name")
    return skill


def bbox_of(text: str) -> BBox:
    """``west,south,east,north`` in degrees (``west > east`` crosses the antimeridian)."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("bbox is west,south,east,north")
    west, south, east, north = (float(p) for p in parts)
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise ValueError("bbox values must be finite")
    if not (-180.0 <= west <= 180.0 and -180.0 <= east <= 180.0):
        raise ValueError("bbox longitudes lie in [-180, 180]")
    if not -90.0 <= south <= north <= 90.0:
        raise ValueError("bbox latitudes lie in [-90, 90] with south <= north")
    return (west, south, east, north)


def _common(
    params: QueryParams, allowed: frozenset[str]
) -> tuple[int, str | None, str | None, BBox | None, float | None]:
    unknown = sorted(set(params.keys()) - allowed)
    if unknown:
        raise _bad(f"unknown parameter {unknown[0]!r}; expected {', '.join(sorted(allowed))}")
    limit = _single(params, "limit", _limit)
    cursor = _single(params, "cursor", str)
    skill = _single(params, "skill", _skill)
    box = _single(params, "bbox", bbox_of)
    since = _single(params, "updated_since", _since)
    after = None if cursor is None else decode_cursor(cursor)
    return DEFAULT_LIMIT if limit is None else limit, after, skill, box, since


def worker_query(params: QueryParams) -> WorkerQuery:
    """The ``WorkerQuery`` of ``GET /v1/workers``'s query string (400 if bad)."""
    limit, after, skill, box, since = _common(params, _WORKER_PARAMS)
    return WorkerQuery(
        limit,
        after,
        statuses=_enums(params, "status", Availability),
        kinds=_enums(params, "kind", WorkerKind),
        skill=skill,
        bbox=box,
        updated_since=since,
    )


def job_query(params: QueryParams) -> JobQuery:
    """The ``JobQuery`` of ``GET /v1/jobs``'s query string (400 if bad)."""
    limit, after, skill, box, since = _common(params, _JOB_PARAMS)
    return JobQuery(
        limit,
        after,
        states=_enums(params, "state", JobState),
        skill=skill,
        bbox=box,
        updated_since=since,
    )
