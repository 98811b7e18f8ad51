"""The rules a service definition and a citizen's answers must meet (pure).

``check_definition`` is run on every ``PUT /v1/services/{code}``;
``check_answers`` on every GeoReport ``POST requests``. Both raise
``InvalidInput`` naming the offending code, never echoing more of the input
than that code.

Answers arrive as ``attribute[code]`` (one value) or ``attribute[code][]``
(repeated, for a ``multivaluelist``). Rules:

* a code the definition does not have, or one that is not ``variable``, is refused;
* a ``required`` attribute must be answered (a blank answer is no answer);
* ``number``: a finite decimal number; ``datetime``: ISO 8601 with a zone;
  ``string``: one line of at most ``MAX_STRING`` characters; ``text``: at
  most ``MAX_TEXT`` characters;
* ``singlevaluelist``: exactly one key of ``values``; ``multivaluelist``: one
  or more distinct keys of ``values``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from ..errors import InvalidInput
from .models import LIST_TYPES, Attribute, Datatype, ServiceDefinition

CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A service code or attribute code: letters, digits, ``_`` and ``-`` (no dot: it ends a URL)."""

MAX_STRING = 1000
MAX_TEXT = 4000
MAX_ATTRIBUTES = 50
MAX_VALUES = 200

Answers = dict[str, str | tuple[str, ...]]
"""Checked answers by attribute code: a string, or a tuple of keys for a multivaluelist."""


def check_code(code: str, what: str = "service_code") -> str:
    """``code`` if it is a valid code; ``InvalidInput`` otherwise."""
    if not CODE.match(code):
        raise InvalidInput(f"{what} must be 1-64 letters, digits, '_' or '-'")
    return code


def check_definition(service: ServiceDefinition) -> ServiceDefinition:
    """``service`` if its attributes are well formed; ``InvalidInput`` naming the first fault.

    Attribute codes are valid and distinct, ``order`` values positive and
    distinct, list types carry distinct value keys and other types none.
    """
    check_code(service.code)
    if len(service.attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(f"a service has at most {MAX_ATTRIBUTES} attributes")
    codes: set[str] = set()
    orders: set[int] = set()
    for attr in service.attributes:
        check_code(attr.code, "attribute code")
        if attr.code in codes:
            raise InvalidInput(f"attribute {attr.code} appears twice")
        codes.add(attr.code)
        if attr.order < 1 or attr.order in orders:
            raise InvalidInput(f"attribute {attr.code}: order must be a positive number not reused")
        orders.add(attr.order)
        _check_values(attr)
    return service


def _check_values(attr: Attribute) -> None:
    if attr.datatype in LIST_TYPES:
        keys = [v.key for v in attr.values]
        if not keys or len(keys) > MAX_VALUES:
            raise InvalidInput(f"attribute {attr.code}: a list needs 1-{MAX_VALUES} values")
        if len(set(keys)) != len(keys) or "" in keys:
            raise InvalidInput(f"attribute {attr.code}: value keys must be distinct and non-empty")
    elif attr.values:
        raise InvalidInput(f"attribute {attr.code}: only list datatypes take values")


def check_answers(
    service: ServiceDefinition, submitted: Mapping[str, Sequence[str]], listed: frozenset[str]
) -> Answers:
    """The citizen's answers, checked against ``service`` (see the module docstring).

    ``submitted`` maps each attribute code to the values sent for it;
    ``listed`` names the codes sent in the ``attribute[code][]`` form.
    """
    by_code = {a.code: a for a in service.attributes if a.variable}
    for code in submitted:
        if code not in by_code:
            raise InvalidInput(f"attribute {check_code(code, 'attribute code')} is not asked")
    answers: Answers = {}
    for attr in by_code.values():
        values = [v.strip() for v in submitted.get(attr.code, ()) if v.strip()]
        if not values:
            if attr.required:
                raise InvalidInput(f"attribute {attr.code} is required")
            continue
        if attr.datatype is Datatype.MULTIVALUELIST:
            answers[attr.code] = _keys(attr, values)
            continue
        if len(values) > 1 or attr.code in listed:
            raise InvalidInput(f"attribute {attr.code} takes one value")
        answers[attr.code] = _one(attr, values[0])
    return answers


def _keys(attr: Attribute, values: list[str]) -> tuple[str, ...]:
    allowed = {v.key for v in attr.values}
    if any(v not in allowed for v in values):
        raise InvalidInput(f"attribute {attr.code}: not one of its values")
    return tuple(dict.fromkeys(values))


def _one(attr: Attribute, value: str) -> str:
    kind = attr.datatype
    if kind is Datatype.SINGLEVALUELIST:
        if value not in {v.key for v in attr.values}:
            raise InvalidInput(f"attribute {attr.code}: not one of its values")
    elif kind is Datatype.NUMBER:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InvalidInput(f"attribute {attr.code} must be a number")
    elif kind is Datatype.DATETIME:
        parse_datetime(value, f"attribute {attr.code}")
    elif kind is Datatype.STRING:
        if len(value) > MAX_STRING or "\n" in value or "\r" in value:
            raise InvalidInput(f"attribute {attr.code}: one line, at most {MAX_STRING} characters")
    elif len(value) > MAX_TEXT:
        raise InvalidInput(f"attribute {attr.code}: at most {MAX_TEXT} characters")
    return value


def parse_datetime(text: str, what: str) -> float:
    """POSIX seconds of an ISO 8601 time with a zone (``Z`` or an offset); else ``InvalidInput``."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} must be an ISO 8601 time, e.g. 2010-01-01T00:00:00Z") from None
    if when.tzinfo is None:
        raise InvalidInput(f"{what} needs a time zone, e.g. a trailing Z")
    return when.timestamp()
