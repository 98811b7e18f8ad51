"""Distances between points on the Earth, in metres.

Two figures, for two purposes:

* :func:`haversine_m` -- great-circle distance on a sphere of radius
  :data:`EARTH_RADIUS_M` (the IUGG mean radius). Fast, uses only ``math``, a
  true metric (it obeys the triangle inequality), so it is the figure used for
  ranking and for the pruning bounds of :mod:`geo.search`. It differs from the
  WGS84 geodesic by at most about 0.56 % (short north-south hops at the equator,
  where the ellipsoid's meridional curvature radius is smallest).
* :func:`geodesic_m` -- the WGS84 ellipsoidal geodesic (Karney's method via
  geopy). Slower; use it for figures shown to people or stored for reporting.

Rules for callers:

* :func:`haversine_m` does **not** validate its input (it sits on hot paths):
  pass finite degrees that already went through
  :func:`geo.coords.validate_latlng`.
* :func:`geodesic_m` validates and raises :class:`geo.errors.InvalidCoordinates`.
* Never mix the two figures in one comparison.
"""

from __future__ import annotations

import math

from geopy.distance import geodesic

from geo.coords import validate_latlng
from geo.errors import InvalidCoordinates

__all__ = ["EARTH_RADIUS_M", "geodesic_m", "haversine_m"]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), in metres; the sphere behind :func:`haversine_m`."""

_DIAMETER_M = 2.0 * EARTH_RADIUS_M
_RADIANS = math.pi / 180.0


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1 = lat1 * _RADIANS
    phi2 = lat2 * _RADIANS
    sin_dphi = math.sin((phi2 - phi1) * 0.5)
    sin_dlam = math.sin((lng2 - lng1) * _RADIANS * 0.5)
    a = sin_dphi * sin_dphi + math.cos(phi1) * math.cos(phi2) * sin_dlam * sin_dlam
    return _DIAMETER_M * math.asin(math.sqrt(min(1.0, a)))


def geodesic_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """WGS84 geodesic distance in metres between two points given in degrees.

    Raises :class:`~geo.errors.InvalidCoordinates` for out-of-range input.
    """
    validate_latlng(lat1, lng1)
    validate_latlng(lat2, lng2)
    try:
        return float(geodesic((lat1, lng1), (lat2, lng2)).meters)
    except ValueError as exc:  # pragma: no cover - validated above
        raise InvalidCoordinates(str(exc)) from exc
