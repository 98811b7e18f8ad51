"""Reading a GeoReport ``POST requests`` form (``application/x-www-form-urlencoded``).

The body is read through ``resources.common.read_body`` (so the body cap
holds) and parsed by Starlette's form parser (python-multipart). Rules:

* ``service_code`` is required; the location is ``lat`` + ``long`` (WGS84
  decimal degrees) or, without them, ``address_string`` for the geocoder.
* ``attribute[code]`` carries one answer, ``attribute[code][]`` repeated
  carries a multivaluelist's keys (checked in ``dispatch.open311.validation``).
* The citizen's ``email``, ``first_name``, ``last_name``, ``phone``,
  ``device_id`` and ``account_id`` are kept for the organisation only.
* Fields the specification does not name are ignored; a repeated plain field
  counts once (its last value). Every fault is a 400 ``FormError`` whose
  message names the field, never its value.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from starlette.datastructures import FormData, Headers
from starlette.formparsers import FormParser

from dispatch.open311.models import Contact

MAX_FIELDS = 200
LIMITS = {
    "description": 4000,
    "address_string": 500,
    "media_url": 2000,
    "api_key": 4000,  # a longer key is simply nobody's: 403, like any wrong key
}
DEFAULT_LIMIT = 200

_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]*)\](\[\])?$")


class FormError(ValueError):
    """The form cannot be used; the message is safe to show (no submitted value)."""


@dataclass
class RequestForm:
    """A ``POST requests`` form, read and with its fields checked for shape."""

    service_code: str
    api_key: str
    jurisdiction_id: str = ""
    lat: float | None = None
    long: float | None = None
    address_string: str = ""
    address_id: str = ""
    zipcode: str = ""
    description: str = ""
    media_url: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    contact: Contact = field(default_factory=Contact)


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def parse_form(headers: Headers, body: bytes) -> FormData:
    """``body`` parsed as a URL-encoded form; ``FormError`` for another media type."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise FormError("send the request as application/x-www-form-urlencoded")
    return await FormParser(headers, _once(body), max_fields=MAX_FIELDS).parse()


def _plain(form: FormData, name: str) -> str:
    values = [v for v in form.getlist(name) if isinstance(v, str)]
    value = values[-1].strip() if values else ""
    if len(value) > LIMITS.get(name, DEFAULT_LIMIT):
        raise FormError(f"{name} is over {LIMITS.get(name, DEFAULT_LIMIT)} characters")
    return value


def _coordinate(form: FormData, name: str, bound: float) -> float | None:
    text = _plain(form, name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise FormError(f"{name} must be a decimal number") from None
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise FormError(f"{name} must lie between -{bound:g} and {bound:g}")
    return value


def read_request_form(form: FormData) -> RequestForm:
    """The checked fields of a ``POST requests`` form (see the module docstring)."""
    out = RequestForm(
        service_code=_plain(form, "service_code"),
        api_key=_plain(form, "api_key"),
        jurisdiction_id=_plain(form, "jurisdiction_id"),
        lat=_coordinate(form, "lat", 90.0),
        long=_coordinate(form, "long", 180.0),
        address_string=_plain(form, "address_string"),
        address_id=_plain(form, "address_id"),
        zipcode=_plain(form, "zipcode"),
        description=_plain(form, "description"),
        media_url=_plain(form, "media_url"),
        contact=Contact(
            email=_plain(form, "email"),
            first_name=_plain(form, "first_name"),
            last_name=_plain(form, "last_name"),
            phone=_plain(form, "phone"),
            device_id=_plain(form, "device_id"),
            account_id=_plain(form, "account_id"),
        ),
    )
    if (out.lat is None) != (out.long is None):
        raise FormError("lat and long go together")
    for name, value in form.multi_items():
        match = _ATTRIBUTE.match(name)
        if match is None or not isinstance(value, str):
            continue
        code = match.group(1)
        if len(value) > LIMITS["description"]:
            raise FormError("an attribute value is over 4000 characters")
        out.attributes.setdefault(code, []).append(value)
        if match.group(2):
            out.listed.add(code)
    return out
