"""GeoReport payloads as the specification's JSON or XML, and its error bodies.

A payload is built once as plain data (dicts, lists, strings, numbers,
booleans, None) and written in the format the URL names (``.json`` or
``.xml``). Rules:

* JSON is the payload as it is (a list at the top for lists, as the
  specification's examples).
* XML starts with ``<?xml version="1.0" encoding="utf-8"?>``; a list is an
  element whose children are named by ``ITEMS`` (``services`` → ``service``);
  booleans are ``true``/``false``, None an empty element. It is written with
  the standard library's ElementTree, which escapes text and never expands
  entities (nothing here parses XML).
* Errors are ``[{"code": 404, "description": …}]`` / ``<errors><error>…``,
  with the HTTP status of the code.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from starlette.responses import Response

from ..errors import RESPONSE_HEADERS
from ..schemas import encoder

FORMATS = ("json", "xml")

ITEMS: dict[str, str] = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "tokens": "token",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}
"""The element name of each list's items."""

MEDIA_TYPES = {"json": "application/json", "xml": "text/xml; charset=utf-8"}

XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _fill(ET.SubElement(element, key), item)
    elif isinstance(value, list):
        name = ITEMS[element.tag]
        for item in value:
            _fill(ET.SubElement(element, name), item)
    else:
        element.text = _text(value)


def to_xml(root: str, payload: Any) -> bytes:
    """``payload`` as an XML document whose root element is ``root``."""
    element = ET.Element(root)
    _fill(element, payload)
    return (XML_DECLARATION + ET.tostring(element, encoding="unicode")).encode("utf-8")


def render(
    fmt: str, root: str, payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A response with ``payload`` in format ``fmt`` (``root`` names the XML root)."""
    body = to_xml(root, payload) if fmt == "xml" else encoder.encode(payload)
    return Response(body, status_code=status, media_type=MEDIA_TYPES[fmt], headers=headers)


def error(fmt: str, status: int, description: str) -> Response:
    """The specification's error body, with ``status`` as HTTP status and code, and the
    headers every error of that status carries (``errors.RESPONSE_HEADERS``)."""
    fmt = fmt if fmt in FORMATS else "json"
    body = [{"code": status, "description": description}]
    return render(fmt, "errors", body, status, RESPONSE_HEADERS.get(status))
