"""A typed facade over h3's integer API -- the only module that imports h3.

Cells are plain ``int`` H3 indexes (:data:`Cell`). Their top bit is always 0,
so they fit a Postgres ``bigint`` and a Redis key without conversion.
Resolutions are ints in ``0..15``; grid distances are ints ``>= 0``.

Rules for callers:

* Nothing outside this module imports h3. Need another h3 function? Add a
  typed wrapper here.
* Every function validates its arguments and raises the :mod:`geo.errors`
  tree: :class:`InvalidCoordinates`, :class:`InvalidCell`,
  :class:`InvalidResolution`, :class:`InvalidArgument`. Any h3 exception that
  still occurs is translated too; none escapes.
* Build a :data:`Cell` from outside data (a database row, a Redis key) with
  :func:`parse_cell`, which checks it; ``Cell(x)`` alone checks nothing.
* :func:`grid_ring` is exact everywhere, pentagons and globe-spanning rings
  included, and costs ``O(k**2)``. To walk rings outwards one after another
  use :class:`geo.rings.RingWalk`, which costs ``O(ring size)`` per ring.
* Hot paths: :func:`latlng_to_cell` takes a fast path for in-range ``float``
  coordinates (the checks it skips cannot fail for them); :func:`grid_neighbors`
  is memoised, so only a cache miss pays for validation and for h3.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NewType, cast

import h3
import h3.api.basic_int as _h3
import h3.api.memview_int as _h3_memview

from geo.coords import validate_latlng
from geo.distance import haversine_m
from geo.errors import (
    GeoError,
    InvalidArgument,
    InvalidCell,
    InvalidCoordinates,
    InvalidResolution,
)

__all__ = [
    "MAX_RESOLUTION",
    "MIN_RESOLUTION",
    "Cell",
    "average_edge_length_m",
    "cell_boundary",
    "cell_resolution",
    "cell_to_latlng",
    "center_and_circumradius_m",
    "circumradius_m",
    "grid_disk",
    "grid_neighbors",
    "grid_ring",
    "is_pentagon",
    "is_valid_cell",
    "latlng_to_cell",
    "parse_cell",
    "pentagons",
    "validate_latlng",
    "validate_resolution",
]

Cell = NewType("Cell", int)
"""An H3 cell index in integer form."""

MIN_RESOLUTION = 0
MAX_RESOLUTION = 15

_U64_LIMIT = 1 << 64
_CIRCUMRADIUS_CACHE_SIZE = 1 << 16
# Memoised neighbour lists: a resolution-9 city of 40 km x 40 km has ~15,000 cells.
_NEIGHBORS_CACHE_SIZE = 1 << 16

# h3's own function under the type this module gives it (no per-call conversion).
_h3_latlng_to_cell = cast("Callable[[float, float, int], Cell]", _h3.latlng_to_cell)


def _translate(exc: Exception) -> GeoError:
    """Map an exception raised inside h3 to the ``geo`` error tree."""
    if isinstance(exc, h3.H3LatLngDomainError):
        return InvalidCoordinates(str(exc) or "latitude/longitude rejected by h3")
    if isinstance(exc, h3.H3ResDomainError):
        return InvalidResolution(str(exc) or "resolution rejected by h3")
    if isinstance(
        exc,
        h3.H3CellInvalidError
        | h3.H3IndexInvalidError
        | h3.H3BaseCellDomainError
        | OverflowError
        | TypeError,
    ):
        return InvalidCell(str(exc) or "cell rejected by h3")
    if isinstance(exc, h3.H3DomainError):
        return InvalidArgument(str(exc) or "argument rejected by h3")
    return GeoError(str(exc) or type(exc).__name__)


_H3_ERRORS = (h3.H3BaseException, OverflowError, TypeError)


def validate_resolution(res: int) -> None:
    """Raise :class:`~geo.errors.InvalidResolution` unless ``res`` is an int in 0..15."""
    if isinstance(res, bool) or not isinstance(res, int):
        raise InvalidResolution(f"resolution must be an int, got {res!r}")
    if not MIN_RESOLUTION <= res <= MAX_RESOLUTION:
        raise InvalidResolution(f"resolution {res} outside {MIN_RESOLUTION}..{MAX_RESOLUTION}")


def _validate_distance(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidArgument(f"grid distance must be an int >= 0, got {k!r}")


def is_valid_cell(value: object) -> bool:
    """Whether ``value`` is an int that is a valid H3 cell index (never raises)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    if not 0 < value < _U64_LIMIT:
        return False
    return bool(_h3.is_valid_cell(value))


def _check_cell(cell: Cell) -> None:
    if not is_valid_cell(cell):
        raise InvalidCell(f"not a valid H3 cell: {cell!r}")


def parse_cell(value: object) -> Cell:
    """Return ``value`` as a :data:`Cell`, or raise :class:`~geo.errors.InvalidCell`."""
    if not is_valid_cell(value):
        raise InvalidCell(f"not a valid H3 cell: {value!r}")
    return Cell(cast(int, value))


def latlng_to_cell(lat: float, lng: float, res: int) -> Cell:
    """The cell of resolution ``res`` that contains the point ``(lat, lng)``.

    ``float`` coordinates within range and an ``int`` resolution within range
    go straight to h3 (NaN and infinities fail the range test); anything else
    takes the full validation, with the same errors.
    """
    if not (
        type(lat) is float
        and type(lng) is float
        and type(res) is int
        and -90.0 <= lat <= 90.0
        and -180.0 <= lng <= 180.0
        and MIN_RESOLUTION <= res <= MAX_RESOLUTION
    ):
        validate_latlng(lat, lng)
        validate_resolution(res)
    try:
        return _h3_latlng_to_cell(lat, lng, res)
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc


def cell_to_latlng(cell: Cell) -> tuple[float, float]:
    """The ``(lat, lng)`` of the cell's center, in degrees."""
    _check_cell(cell)
    try:
        lat, lng = _h3.cell_to_latlng(cell)
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc
    return float(lat), float(lng)


def cell_resolution(cell: Cell) -> int:
    """The resolution (0..15) of ``cell``."""
    _check_cell(cell)
    try:
        return int(_h3.get_resolution(cell))
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc


def is_pentagon(cell: Cell) -> bool:
    """Whether ``cell`` is one of the twelve pentagons of its resolution."""
    _check_cell(cell)
    try:
        return bool(_h3.is_pentagon(cell))
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc


def pentagons(res: int) -> list[Cell]:
    """The twelve pentagon cells of resolution ``res``."""
    validate_resolution(res)
    try:
        return cast("list[Cell]", [int(c) for c in _h3.get_pentagons(res)])
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc


def grid_disk(cell: Cell, k: int) -> list[Cell]:
    """All cells at grid distance ``<= k`` from ``cell``, ``cell`` first; no order otherwise.

    Exact around pentagons: h3 falls back to a breadth-first search there.
    """
    _check_cell(cell)
    _validate_distance(k)
    try:
        return cast("list[Cell]", list(_h3.grid_disk(cell, k)))
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc


@functools.lru_cache(maxsize=_NEIGHBORS_CACHE_SIZE)
def grid_neighbors(cell: Cell) -> tuple[Cell, ...]:
    """The cells at grid distance exactly 1 from ``cell`` (6, or 5 for a pentagon); no order.

    ``grid_disk(cell, 1)`` without ``cell``, memoised in a bounded LRU cache:
    a cached answer costs a dictionary lookup, a miss validates ``cell`` (an
    invalid cell is never cached) and asks h3 (its memoryview API, which
    skips building a list from h3's buffer).
    """
    _check_cell(cell)
    try:
        disk = cast("list[Cell]", memoryview(_h3_memview.grid_disk(cell, 1)).tolist())
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc
    return tuple(c for c in disk if c != cell)


def grid_ring(cell: Cell, k: int) -> list[Cell]:
    """All cells at grid distance exactly ``k`` from ``cell`` (``[cell]`` for ``k == 0``).

    Computed as ``grid_disk(cell, k)`` minus ``grid_disk(cell, k - 1)``, not with
    h3's ``grid_ring``: in h3 4.5 the latter is right around pentagons but
    silently wrong once a ring reaches around the globe (e.g. resolution 1 from
    ``k = 12``, resolution 2 from ``k = 30``: extra cells, missing cells,
    duplicates), while ``grid_disk`` stayed exact in every case checked.
    Returns ``[]`` once ``k`` exceeds the largest grid distance from ``cell``.
    """
    _check_cell(cell)
    _validate_distance(k)
    if k == 0:
        return [cell]
    try:
        inner = set(_h3.grid_disk(cell, k - 1))
        outer = _h3.grid_disk(cell, k)
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc
    return cast("list[Cell]", [c for c in outer if c not in inner])


def cell_boundary(cell: Cell) -> tuple[tuple[float, float], ...]:
    """The cell's boundary vertices as ``(lat, lng)`` pairs, counter-clockwise.

    Hexagons have 6 vertices and pentagons 5; cells cut by an icosahedron edge
    carry extra vertices (up to 10) so that every edge is a great-circle arc.
    """
    _check_cell(cell)
    try:
        vertices = _h3.cell_to_boundary(cell)
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc
    return tuple((float(lat), float(lng)) for lat, lng in vertices)


def center_and_circumradius_m(cell: Cell) -> tuple[float, float, float]:
    """``(lat, lng)`` of the cell's center and its :func:`circumradius_m`, computed afresh.

    For callers that keep their own cache of both figures (:mod:`geo.search`).
    """
    _check_cell(cell)
    try:
        lat, lng = _h3.cell_to_latlng(cell)
        vertices = _h3.cell_to_boundary(cell)
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc
    lat, lng = float(lat), float(lng)
    reach = max([haversine_m(lat, lng, v_lat, v_lng) for v_lat, v_lng in vertices])
    return lat, lng, reach


@functools.lru_cache(maxsize=_CIRCUMRADIUS_CACHE_SIZE)
def _circumradius_m(cell: Cell) -> float:
    return center_and_circumradius_m(cell)[2]


def circumradius_m(cell: Cell) -> float:
    """The largest haversine distance in metres from the cell's center to its boundary.

    The cell's edges are great-circle arcs and the cell is far smaller than a
    hemisphere, so every point of the cell lies within this distance of the
    center. Results are memoised in a bounded LRU cache.
    """
    _check_cell(cell)
    return _circumradius_m(cell)


def average_edge_length_m(res: int) -> float:
    """The average hexagon edge length in metres at resolution ``res`` (pentagons excluded)."""
    validate_resolution(res)
    try:
        return float(_h3.average_hexagon_edge_length(res, unit="m"))
    except _H3_ERRORS as exc:
        raise _translate(exc) from exc
