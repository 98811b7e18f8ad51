"""An in-memory index of moving members (workers, jobs) bucketed by H3 cell.

:class:`CellIndex` maps each member key to its cell, and each populated cell
to its members with their last positions (:class:`geo.members.CellMembers`,
parallel arrays that the search reads directly). Moves and removals are
``O(1)``; :meth:`CellIndex.nearest` and :meth:`CellIndex.within` are exact
queries by haversine distance (best-first cell expansion with a circumradius
lower bound and a sparse fallback; correctness argument and cost in
:mod:`geo.search`).

Rules for callers:

* Not thread-safe and not async-aware: own one index per event loop or guard
  it. It does no I/O.
* Keys must be hashable and mutually orderable (``str`` or ``int``); ties in
  distance are broken by key.
* The resolution is fixed at construction (``0..15``, default 9: edges of
  ~200 m). Finer resolutions make moves cross cells more often; coarser ones
  put more members in each cell. Results are exact either way.
* A predicate passed to a query must not modify the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic

from geo.cells import Cell, latlng_to_cell, validate_resolution
from geo.members import CellMembers, K
from geo.search import Neighbor, search

__all__ = ["DEFAULT_RESOLUTION", "CellIndex"]

DEFAULT_RESOLUTION = 9


class CellIndex(Generic[K]):
    """Members keyed by ``K`` with a position each, bucketed by H3 cell."""

    __slots__ = ("_cell_of", "_members", "_positions", "_resolution")

    def __init__(self, resolution: int = DEFAULT_RESOLUTION) -> None:
        validate_resolution(resolution)
        self._resolution = resolution
        self._cell_of: dict[K, Cell] = {}
        self._members: dict[Cell, CellMembers[K]] = {}
        self._positions: _Positions[K] = _Positions(self)

    @property
    def resolution(self) -> int:
        """The H3 resolution members are bucketed at."""
        return self._resolution

    def __len__(self) -> int:
        return len(self._cell_of)

    def __contains__(self, key: object) -> bool:
        return key in self._cell_of

    def cells(self) -> int:
        """How many cells hold at least one member (empty cells are dropped)."""
        return len(self._members)

    def upsert(self, key: K, lat: float, lng: float) -> Cell:
        """Insert ``key`` at ``(lat, lng)`` or move it there; return its cell. ``O(1)``.

        Raises :class:`~geo.errors.InvalidCoordinates` (and changes nothing) for a
        bad position. The cell comes from :func:`geo.cells.latlng_to_cell`, whose
        fast path makes in-range ``float`` coordinates cost one h3 call.
        """
        cell = latlng_to_cell(lat, lng, self._resolution)
        members = self._members
        old = self._cell_of.get(key)
        if old != cell:
            if old is not None:
                self._discard(old, key)
            self._cell_of[key] = cell
            bucket = members.get(cell)
            if bucket is None:
                bucket = members[cell] = CellMembers()
            bucket.put(key, lat, lng)
        else:
            members[cell].put(key, lat, lng)
        return cell

    def remove(self, key: K) -> bool:
        """Forget ``key``; return whether it was present. ``O(1)``."""
        cell = self._cell_of.pop(key, None)
        if cell is None:
            return False
        self._discard(cell, key)
        return True

    def _discard(self, cell: Cell, key: K) -> None:
        members = self._members[cell]
        members.discard(key)
        if not members:
            del self._members[cell]

    def position(self, key: K) -> tuple[float, float] | None:
        """The last ``(lat, lng)`` of ``key``, or ``None`` if absent."""
        cell = self._cell_of.get(key)
        if cell is None:
            return None
        return self._members[cell].position(key)

    def cell_of(self, key: K) -> Cell | None:
        """The cell of ``key``, or ``None`` if absent."""
        return self._cell_of.get(key)

    def members(self, cell: Cell) -> frozenset[K]:
        """A snapshot of the members in ``cell`` (empty if none)."""
        return frozenset(self._members.get(cell, ()))

    def nearest(
        self,
        lat: float,
        lng: float,
        k: int,
        max_radius_m: float,
        predicate: Callable[[K], bool] | None = None,
    ) -> list[Neighbor[K]]:
        """The ``k`` nearest members within ``max_radius_m`` for which ``predicate`` holds.

        Sorted by ``(distance_m, key)``; fewer than ``k`` if fewer qualify.
        ``max_radius_m`` may be ``math.inf``. The predicate is only called for
        members that would enter the current top ``k``, at most once each.
        Exact at every resolution, near the poles, the antimeridian and the
        pentagons; see :mod:`geo.search` for the argument and the cost.

        Raises :class:`~geo.errors.InvalidCoordinates` for a bad query point and
        :class:`~geo.errors.InvalidArgument` for ``k < 0`` or a negative/NaN radius.
        """
        return search(
            self._members, self._positions, self._resolution, lat, lng, k, max_radius_m, predicate
        )

    def within(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        predicate: Callable[[K], bool] | None = None,
    ) -> list[Neighbor[K]]:
        """Every member within ``radius_m`` for which ``predicate`` holds, nearest first.

        Sorted by ``(distance_m, key)``; same walk, guarantees and errors as
        :meth:`nearest`, without a count limit.
        """
        return search(
            self._members,
            self._positions,
            self._resolution,
            lat,
            lng,
            None,
            radius_m,
            predicate,
        )


class _Positions(Mapping[K, tuple[float, float]]):
    """A read-only view of an index's positions by key (what :func:`geo.search.search` takes).

    The search reads positions from the :class:`CellMembers` arrays directly,
    so this view only completes the interface.
    """

    __slots__ = ("_index",)

    def __init__(self, index: CellIndex[K]) -> None:
        self._index = index

    def __getitem__(self, key: K) -> tuple[float, float]:
        position = self._index.position(key)
        if position is None:
            raise KeyError(key)
        return position

    def __iter__(self) -> Iterator[K]:
        return iter(self._index._cell_of)

    def __len__(self) -> int:
        return len(self._index)
