"""Exact nearest-neighbour and radius search over members bucketed by H3 cell.

This module holds the query algorithm behind :meth:`geo.index.CellIndex.nearest`
and :meth:`geo.index.CellIndex.within`; it reads the index's dictionaries and
never changes them. Distances are :func:`geo.distance.haversine_m`; results are
sorted by ``(distance_m, key)``.

Algorithm
---------
Let ``q`` be the query point and ``c0`` its cell at the index's resolution.

1. Walk exact grid rings around ``c0`` (:class:`geo.rings.RingWalk`): ring 0 is
   ``c0``, ring ``r`` the cells at grid distance ``r``. Offer every member of
   every cell of the ring to the result set (below).
2. After ring ``r``, compute ``lb = min over cells c of ring r of
   (haversine(q, center(c)) - reach(c))`` where ``reach(c)`` is the cell's
   circumradius (:func:`geo.cells.circumradius_m`) plus a tiny slack for
   floating-point error. Stop when ``lb > bound``, where ``bound`` is the
   radius, or -- once ``k`` results are held -- the k-th best distance. (The
   test is lazy: the first ring cell whose own term is ``<= bound`` settles
   it, so a circumradius is only looked up for cells whose center lies beyond
   ``bound``.)
3. Stop when the walk has covered every cell of the sphere.
4. Sparse switch: when fewer cells are populated than the next ring could hold
   (``6 * (r + 1)``), or the walk has already visited more cells than are
   populated, stop walking and scan the populated cells not yet visited
   instead, in increasing order of their own bound ``haversine(q, center(c)) -
   reach(c)``, stopping at the first one above ``bound``.

Correctness
-----------
Let ``D`` be the union of the cells of rings ``0..r`` (the disk). ``q`` lies in
``c0`` (that is how ``c0`` was chosen), so inside ``D``. Take any member ``p``
in a cell outside ``D``. The shortest path from ``q`` to ``p`` leaves ``D`` at
some point ``x`` of its boundary, and ``x`` lies on a cell ``c`` of ``D`` that
touches a cell outside ``D``. H3 cells that touch share an edge (three cells
meet at every vertex), so they are grid neighbours: ``c`` is at grid distance
exactly ``r``, i.e. in ring ``r``. ``c``'s edges are great-circle arcs, so every
point of ``c`` is within ``reach(c)`` of its center, and by the triangle
inequality::

    d(q, p) >= d(q, x) >= d(q, center(c)) - reach(c) >= lb

So when ``lb > bound`` no unvisited member can be within the radius or beat
the k-th result; on equality the walk goes on, so a member at exactly the k-th
distance with a smaller key is not lost. The scan of step 4 uses the same
bound per cell (``p`` lies in its own cell ``c``, so ``d(q, p) >= d(q,
center(c)) - reach(c)``). The rings are exact (breadth-first, not h3's
``grid_ring``), so the argument holds at every resolution 0..15, around
pentagons, across the antimeridian and at the poles.

The predicate is applied lazily: only to a member within the radius that
would enter the current top ``k``; each member is tested at most once per query.

Complexity
----------
With ``P`` populated cells, the walk visits ``O(min(rho**2, P))`` cells, where
``rho`` is the number of rings needed for the bound to pass the radius or the
k-th distance (roughly that distance over 1.7 edge lengths, the spacing of
cell centers), because the sparse switch fires once the walk has visited more
cells than are populated. Each visited cell costs one neighbour lookup; the
stop test costs one center lookup per ring cell at most, and a (cached)
circumradius only for cells beyond the bound; the scan costs ``O(P log P)``. Each member
of a visited cell costs one haversine and, if it enters the top ``k``, an
``O(k)`` insertion (``within`` sorts its results once at the end).

Rules for callers:

* The predicate must not modify the index (it runs during iteration) and may
  be called for any subset of the candidates, in any order.
* Keys must be hashable and mutually orderable (ties in distance are broken
  by key).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from geo.cells import Cell, cell_to_latlng, circumradius_m, latlng_to_cell
from geo.coords import validate_latlng
from geo.distance import haversine_m
from geo.errors import InvalidArgument
from geo.rings import RingWalk

__all__ = ["K", "Neighbor", "OrderedKey", "search"]

# Slack added to each circumradius before it is used as a bound: it absorbs
# floating-point error in haversine and in h3's vertices and only makes the
# bound more conservative (at most ~1 m for a resolution-0 cell).
_REACH_RELATIVE_SLACK = 1e-6
_REACH_ABSOLUTE_SLACK_M = 1e-3
# A hexagonal ring r holds at most 6 * r cells.
_CELLS_PER_RING_STEP = 6


class OrderedKey(Protocol):
    """A member key: hashable and orderable (``str`` and ``int`` qualify)."""

    def __hash__(self) -> int: ...

    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=OrderedKey)


@dataclass(frozen=True, slots=True)
class Neighbor(Generic[K]):
    """A member found by a query, with its haversine distance from the query point."""

    key: K
    distance_m: float
    lat: float
    lng: float


class _Results(Generic[K]):
    """The best candidates so far, kept sorted by ``(distance, key)``."""

    __slots__ = ("_limit", "_order", "_predicate", "_rows", "bound")

    def __init__(
        self, limit: int | None, radius_m: float, predicate: Callable[[K], bool] | None
    ) -> None:
        self._limit = limit
        self._predicate = predicate
        self._order: list[tuple[float, K]] = []
        self._rows: list[Neighbor[K]] = []
        # No candidate farther than this can enter the results.
        self.bound = radius_m

    def offer_all(
        self,
        keys: Collection[K],
        positions: Mapping[K, tuple[float, float]],
        lat: float,
        lng: float,
    ) -> None:
        for key in keys:
            m_lat, m_lng = positions[key]
            distance = haversine_m(lat, lng, m_lat, m_lng)
            if distance <= self.bound:
                self._offer(key, distance, m_lat, m_lng)

    def _offer(self, key: K, distance: float, lat: float, lng: float) -> None:
        limit = self._limit
        if limit is None:
            if self._predicate is None or self._predicate(key):
                self._rows.append(Neighbor(key, distance, lat, lng))
            return
        order = self._order
        rank = (distance, key)
        if len(order) == limit and not rank < order[-1]:
            return
        if self._predicate is not None and not self._predicate(key):
            return
        at = bisect.bisect_right(order, rank)
        order.insert(at, rank)
        self._rows.insert(at, Neighbor(key, distance, lat, lng))
        if len(order) > limit:
            order.pop()
            self._rows.pop()
        if len(order) == limit:
            self.bound = order[-1][0]

    def result(self) -> list[Neighbor[K]]:
        if self._limit is None:
            self._rows.sort(key=lambda row: (row.distance_m, row.key))
        return self._rows


def _validate_limit(limit: int | None) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidArgument(f"k must be an int >= 0, got {limit!r}")


def _validate_radius(radius_m: float) -> None:
    if (
        isinstance(radius_m, bool)
        or not isinstance(radius_m, int | float)
        or math.isnan(radius_m)
        or radius_m < 0
    ):
        raise InvalidArgument(f"radius must be a number >= 0 (inf allowed), got {radius_m!r}")


def _reach_m(cell: Cell) -> float:
    """The circumradius of ``cell`` plus the floating-point slack."""
    return circumradius_m(cell) * (1.0 + _REACH_RELATIVE_SLACK) + _REACH_ABSOLUTE_SLACK_M


def _cell_bound(lat: float, lng: float, cell: Cell) -> float:
    """A lower bound on the distance from ``(lat, lng)`` to any point of ``cell``."""
    c_lat, c_lng = cell_to_latlng(cell)
    return haversine_m(lat, lng, c_lat, c_lng) - _reach_m(cell)


def _ring_is_beyond(lat: float, lng: float, ring: list[Cell], bound: float) -> bool:
    """Whether ``min over ring of _cell_bound(...) > bound``, computed lazily.

    A cell whose center is within ``bound`` settles the answer (``False``) without
    its circumradius, so rings well inside the bound cost one center lookup.
    """
    for cell in ring:
        c_lat, c_lng = cell_to_latlng(cell)
        to_center = haversine_m(lat, lng, c_lat, c_lng)
        if to_center <= bound or to_center - _reach_m(cell) <= bound:
            return False
    return True


def search(
    members_by_cell: Mapping[Cell, Collection[K]],
    positions: Mapping[K, tuple[float, float]],
    resolution: int,
    lat: float,
    lng: float,
    limit: int | None,
    radius_m: float,
    predicate: Callable[[K], bool] | None = None,
) -> list[Neighbor[K]]:
    """Members within ``radius_m`` of ``(lat, lng)`` passing ``predicate``, nearest first.

    ``limit`` caps the number of results (``None``: no cap). ``members_by_cell``
    must hold only non-empty collections, keyed by cells of ``resolution``, and
    ``positions`` the position of every member. See the module docstring for
    the algorithm, its correctness argument and its cost.
    """
    validate_latlng(lat, lng)
    _validate_limit(limit)
    _validate_radius(radius_m)
    origin = latlng_to_cell(lat, lng, resolution)
    if limit == 0 or not members_by_cell:
        return []
    results: _Results[K] = _Results(limit, radius_m, predicate)
    populated = len(members_by_cell)
    walk = RingWalk(origin)
    while ring := walk.next_ring():
        for cell in ring:
            members = members_by_cell.get(cell)
            if members:
                results.offer_all(members, positions, lat, lng)
        if _ring_is_beyond(lat, lng, ring, results.bound):
            break
        next_ring_cap = _CELLS_PER_RING_STEP * (walk.radius + 1)
        if populated < next_ring_cap or walk.seen_count > populated:
            _scan_unvisited(members_by_cell, positions, walk, results, lat, lng)
            break
    return results.result()


def _scan_unvisited(
    members_by_cell: Mapping[Cell, Collection[K]],
    positions: Mapping[K, tuple[float, float]],
    walk: RingWalk,
    results: _Results[K],
    lat: float,
    lng: float,
) -> None:
    """Offer the members of every populated cell the walk has not visited, best bound first."""
    pending: list[tuple[float, Cell]] = []
    for cell in members_by_cell:
        if walk.has_seen(cell):
            continue
        bound = _cell_bound(lat, lng, cell)
        if bound <= results.bound:
            pending.append((bound, cell))
    pending.sort()
    for bound, cell in pending:
        if bound > results.bound:
            break
        results.offer_all(members_by_cell[cell], positions, lat, lng)
