"""What a valid coordinate is.

A position is a ``(lat, lng)`` pair of degrees on WGS84:

* latitude in ``[-90, 90]`` and longitude in ``[-180, 180]``, both inclusive;
* finite ``int`` or ``float`` values -- NaN, infinities and ``bool`` are refused
  (``True`` is an ``int`` in Python, but never a coordinate).

Rules for callers:

* Validate at the edge of ``geo``: every public function that takes a position
  calls :func:`validate_latlng` (or documents that it does not, such as
  :func:`geo.distance.haversine_m`).
* Longitude is not wrapped: ``190`` is an error, not ``-170``. Normalise
  upstream if a source emits such values.
"""

from __future__ import annotations

import math

from geo.errors import InvalidCoordinates

__all__ = ["validate_latlng"]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_latlng(lat: float, lng: float) -> None:
    """Raise :class:`~geo.errors.InvalidCoordinates` unless ``(lat, lng)`` is valid."""
    if not (_is_number(lat) and _is_number(lng)):
        raise InvalidCoordinates(f"coordinates must be numbers, got ({lat!r}, {lng!r})")
    if not (math.isfinite(lat) and math.isfinite(lng)):
        raise InvalidCoordinates(f"coordinates must be finite, got ({lat!r}, {lng!r})")
    if not -90.0 <= lat <= 90.0:
        raise InvalidCoordinates(f"latitude {lat!r} outside [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise InvalidCoordinates(f"longitude {lng!r} outside [-180, 180]")
