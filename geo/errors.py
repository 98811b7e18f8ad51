"""The error tree of the ``geo`` package.

Every error raised by ``geo`` on bad input derives from :class:`GeoError`,
which is a :class:`ValueError`, so a caller may catch either::

    ValueError
    └── GeoError
        ├── InvalidCoordinates   latitude outside [-90, 90], longitude outside
        │                        [-180, 180], NaN, infinity, bool or non-number
        ├── InvalidCell          not a valid H3 cell index (integer form)
        ├── InvalidResolution    H3 resolution outside 0..15, or not an int
        └── InvalidArgument      a count, grid distance or radius out of range

Rules for callers:

* Errors from h3 never escape ``geo``: they are translated into this tree and
  chained (``raise ... from``), so the original is kept in ``__cause__``.
* ``geo`` does not map errors to transport codes; only ``mobile_api`` does.
"""

from __future__ import annotations

__all__ = [
    "GeoError",
    "InvalidArgument",
    "InvalidCell",
    "InvalidCoordinates",
    "InvalidResolution",
]


class GeoError(ValueError):
    """Root of every error raised by ``geo`` for bad input."""


class InvalidCoordinates(GeoError):
    """A latitude/longitude pair is out of range, not finite or not a number."""


class InvalidCell(GeoError):
    """A value is not a valid H3 cell index."""


class InvalidResolution(GeoError):
    """An H3 resolution is not an int in 0..15."""


class InvalidArgument(GeoError):
    """A count, grid distance or radius is outside its domain."""
