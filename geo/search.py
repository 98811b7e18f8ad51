"""Exact nearest-neighbour and radius search over members bucketed by H3 cell.

This module holds the query algorithm behind :meth:`geo.index.CellIndex.nearest`
and :meth:`geo.index.CellIndex.within`; it reads the index's dictionaries and
never changes them. Distances are :func:`geo.distance.haversine_m` (computed
inline, operation for operation, so the figures are bit-identical); results
are sorted by ``(distance_m, key)``.

Algorithm
---------
Let ``q`` be the query point, ``c0`` its cell at the index's resolution, and
for any cell ``c`` let ``lb(c) = haversine(q, center(c)) - reach(c)``, where
``reach(c)`` is the cell's circumradius (:func:`geo.cells.circumradius_m`)
plus a tiny slack for floating-point error. ``bound`` is the radius or -- once
``k`` results are held -- the k-th best distance; it only ever shrinks.

1. Best-first walk: a heap of cells keyed by ``lb``, holding ``c0`` first.
   Pop the cell with the smallest ``lb``; stop if ``lb > bound``. Otherwise
   offer its members to the result set, then look at its grid neighbours
   (:func:`geo.cells.grid_neighbors`, memoised): each one not seen before is
   marked seen and pushed if its ``lb <= bound`` (one above it can never be
   popped, since ``bound`` only shrinks).
2. Stop when the heap is empty (every cell of the sphere was seen).
3. Sparse switch: once more cells have been seen than are populated, stop
   walking and scan the populated cells not yet popped instead, in increasing
   order of ``lb``, stopping at the first one above ``bound``.

Members of a popped cell are screened before their haversine: the latitude
difference alone bounds the distance from below (``d >= R * |dphi|``), and
the haversine's ``a`` term is compared with the bound's before ``asin``. Both
screens carry a margin (1 ppb relative) and are used only while ``bound <=
1,000 km``, where ``asin`` is well-conditioned, so they only skip members
whose computed distance exceeds ``bound``.

Correctness
-----------
Let ``P`` be the union of the popped cells; ``q`` lies in ``c0``, so in ``P``.
Every point ``x`` of a cell ``c`` is within ``reach(c)`` of ``center(c)`` (the
cell's edges are great-circle arcs), so ``d(q, x) >= lb(c)`` by the triangle
inequality. Take a member ``p`` whose cell ``c_p`` was never popped when the
walk stops with ``bound``:

* If ``c_p`` was seen, it is in the heap or was never pushed; either way
  ``lb(c_p) > bound`` (the heap's minimum exceeds ``bound``), so ``d(q, p) >
  bound``.
* If ``c_p`` was not seen, follow the shortest path from ``q`` to ``p``: it
  leaves ``P`` at some point ``x`` shared by a popped cell ``c`` and a cell
  ``c'`` that was not popped. H3 cells that touch share an edge (three cells
  meet at every vertex), so ``c'`` is a grid neighbour of ``c``, was seen when
  ``c`` was popped, and as above ``d(q, p) >= d(q, x) >= lb(c') > bound``.

So no unvisited member is within the radius or beats the k-th result; on
equality the walk goes on, so a member at exactly the k-th distance with a
smaller key is not lost. The scan of step 3 covers every populated cell not
popped, with the same per-cell bound. Neighbours come from ``grid_disk(c, 1)``,
which is exact at every resolution 0..15, around pentagons, across the
antimeridian and at the poles; no grid ring is ever computed.

The predicate is applied lazily: only to a member within the bound that
would enter the current top ``k``; each member is tested at most once per query.

Complexity
----------
The walk pops the cells with ``lb <= bound`` -- those whose center lies within
about one circumradius of the final bound -- and computes ``lb`` for their
neighbours: one memoised neighbour lookup per popped cell, one memoised center
and circumradius per seen cell, ``O(log n)`` heap work. At high density that is
the query cell and the few neighbours that reach within the k-th distance;
at low density it is bounded by the population (step 3; the scan costs
``O(P log P)`` for ``P`` populated cells). Each member of a popped cell costs a
subtraction and a comparison, and a haversine if it is close enough in
latitude. A cell's members within the bound are sorted and merged into the
top ``k`` (with a predicate: offered in order until one cannot enter), so
few of them pay for an insertion.

Members of a :class:`geo.members.CellMembers` are read from its arrays;
any other collection is read key by key from ``positions``.

Rules for callers:

* ``members_by_cell`` is read with ``len``, ``get`` (cells the walk pops),
  ``[]`` and iteration (the scan of step 3), and must hold only non-empty
  collections.
* The predicate must not modify the index (it runs during iteration) and may
  be called for any subset of the candidates, in any order.
* Keys must be hashable and mutually orderable (ties in distance are broken
  by key), and a key must not be in two cells.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Generic, NamedTuple

from geo.cells import Cell, center_and_circumradius_m, grid_neighbors, latlng_to_cell
from geo.coords import validate_latlng
from geo.distance import EARTH_RADIUS_M
from geo.errors import InvalidArgument
from geo.members import CellMembers, K, OrderedKey

__all__ = ["K", "Neighbor", "OrderedKey", "reach_m", "search", "validate_limit", "validate_radius"]

# haversine_m's constants, so that the inline kernel below reproduces it exactly.
_RADIANS = math.pi / 180.0
_DIAMETER_M = 2.0 * EARTH_RADIUS_M
# Slack added to each circumradius before it is used as a bound: it absorbs
# floating-point error in haversine and in h3's vertices and only makes the
# bound more conservative (at most ~1 m for a resolution-0 cell).
_REACH_RELATIVE_SLACK = 1e-6
_REACH_ABSOLUTE_SLACK_M = 1e-3
# Within this of the antipode, haversine's asin is ill-conditioned (errors up
# to ~0.2 m); cell bounds that reach there get a further metre of slack.
_NEAR_ANTIPODE_M = math.pi * EARTH_RADIUS_M - 10_000.0
_ANTIPODE_SLACK_M = 1.0
# The member screens: only below this bound, and with this relative margin.
_SCREEN_LIMIT_M = 1_000_000.0
_SCREEN_RELATIVE_SLACK = 1e-9
_SCREEN_ABSOLUTE_SLACK_RAD = 1e-12
# Memoised cell geometry: a resolution-9 city of 40 km x 40 km has ~15,000 cells.
_DISC_CACHE_SIZE = 1 << 16


class Neighbor(NamedTuple, Generic[K]):
    """A member found by a query, with its haversine distance from the query point.

    A named tuple: building one costs a third of a frozen dataclass, and a
    query builds ``k`` of them.
    """

    key: K
    distance_m: float
    lat: float
    lng: float


@functools.lru_cache(maxsize=_DISC_CACHE_SIZE)
def _disc(cell: Cell) -> tuple[float, float, float, float]:
    """``(phi, cos(phi), lng)`` of the cell's center (radians, cosine, degrees) and its reach.

    Memoised; a miss validates ``cell`` through :mod:`geo.cells`.
    """
    lat, lng, circumradius = center_and_circumradius_m(cell)
    phi = lat * _RADIANS
    return phi, math.cos(phi), lng, reach_m(circumradius)


@functools.lru_cache(maxsize=_DISC_CACHE_SIZE)
def _neighbor_discs(cell: Cell) -> tuple[tuple[Cell, float, float, float, float], ...]:
    """``(neighbor, *_disc(neighbor))`` for each grid neighbour of ``cell``; memoised.

    The walk reads a popped cell's neighbours and their geometry in one lookup.
    """
    return tuple((n, *_disc(n)) for n in grid_neighbors(cell))


def reach_m(circumradius: float) -> float:
    """A cell's circumradius plus the slack every bound of this module adds to it.

    Other searches that bound cells the same way (the Redis index) use this.
    """
    return circumradius * (1.0 + _REACH_RELATIVE_SLACK) + _REACH_ABSOLUTE_SLACK_M


def _screens(bound: float) -> tuple[float, float]:
    """``(dphi_cut, a_cut)``: a member with ``|dphi| > dphi_cut`` or ``a > a_cut`` is too far.

    ``dphi`` is the latitude difference in radians and ``a`` haversine's
    ``sin²(dphi/2) + cos·cos·sin²(dlng/2)``, both as the kernel computes them.
    The computed distance is at least ``R·|dphi|`` and grows with ``a``; the
    margins exceed the rounding error by orders of magnitude below
    :data:`_SCREEN_LIMIT_M`. Above it the screens are off.
    """
    if not bound <= _SCREEN_LIMIT_M:
        return math.inf, math.inf
    half_angle = math.sin(bound / _DIAMETER_M)
    return (
        bound / EARTH_RADIUS_M * (1.0 + _SCREEN_RELATIVE_SLACK) + _SCREEN_ABSOLUTE_SLACK_RAD,
        half_angle * half_angle * (1.0 + _SCREEN_RELATIVE_SLACK),
    )


class _Ranking(Generic[K]):
    """The query point and the best candidates so far, sorted by ``(distance, key)``."""

    __slots__ = (
        "_a_cut",
        "_dphi_cut",
        "_limit",
        "_predicate",
        "_ranked",
        "_screened",
        "bound",
        "cos_phi",
        "lng",
        "phi",
    )

    def __init__(
        self,
        lat: float,
        lng: float,
        limit: int | None,
        radius_m: float,
        predicate: Callable[[K], bool] | None,
    ) -> None:
        self.phi = lat * _RADIANS
        self.cos_phi = math.cos(self.phi)
        self.lng = lng
        self._limit = limit
        self._predicate = predicate
        self._ranked: list[tuple[float, K, float, float]] = []
        # No candidate farther than this can enter the results.
        self.bound = radius_m
        # The screens, computed for the bound ``_screened`` (>= the bound: still safe).
        self._screened = radius_m
        self._dphi_cut, self._a_cut = _screens(radius_m)

    def lower_bound(self, cell: Cell) -> float:
        """``lb(cell)``: no point of ``cell`` is closer to the query point than this.

        :func:`_walk` repeats these lines inline; keep the two copies identical.
        """
        c_phi, c_cos, c_lng, reach = _disc(cell)
        s = math.sin((c_phi - self.phi) * 0.5)
        t = math.sin((c_lng - self.lng) * _RADIANS * 0.5)
        a = s * s + self.cos_phi * c_cos * t * t
        to_center = _DIAMETER_M * math.asin(math.sqrt(a if a < 1.0 else 1.0))
        if to_center + reach > _NEAR_ANTIPODE_M:
            return to_center - reach - _ANTIPODE_SLACK_M
        return to_center - reach

    def scan(self, rows: Iterable[tuple[K, float, float]]) -> None:
        """Offer every ``(key, lat, lng)``; the distance is haversine_m's, inlined.

        The members within the bound are collected first and offered nearest
        first, so that few of them go through the top-``k`` insertion.
        """
        sin, cos, asin, sqrt = math.sin, math.cos, math.asin, math.sqrt
        radians, diameter = _RADIANS, _DIAMETER_M
        phi, cos_phi, lng = self.phi, self.cos_phi, self.lng
        bound = self.bound
        if bound != self._screened:
            self._screened = bound
            self._dphi_cut, self._a_cut = _screens(bound)
        dphi_cut, a_cut = self._dphi_cut, self._a_cut
        found: list[tuple[float, K, float, float]] = []
        for key, m_lat, m_lng in rows:
            phi2 = m_lat * radians
            dphi = phi2 - phi
            if dphi > dphi_cut or -dphi > dphi_cut:
                continue
            s = sin(dphi * 0.5)
            t = sin((m_lng - lng) * radians * 0.5)
            a = s * s + cos_phi * cos(phi2) * t * t
            if a > a_cut:
                continue
            distance = diameter * asin(sqrt(a if a < 1.0 else 1.0))
            if distance <= bound:
                found.append((distance, key, m_lat, m_lng))
        if found:
            self._admit(found)

    def _admit(self, found: list[tuple[float, K, float, float]]) -> None:
        """Offer rows ``(distance, key, lat, lng)`` within the bound, then update the bound.

        Rows order by ``(distance, key)``: keys are unique, so lat/lng never decide.
        The predicate sees only rows that would enter the current top ``k``.
        """
        ranked = self._ranked
        predicate = self._predicate
        limit = self._limit
        if limit is None:
            ranked.extend(row for row in found if predicate is None or predicate(row[1]))
            return
        found.sort()
        if predicate is None:
            ranked.extend(found[:limit])
            ranked.sort()
            del ranked[limit:]
        else:
            for row in found:
                if len(ranked) >= limit and not row < ranked[-1]:
                    break
                if predicate(row[1]):
                    bisect.insort(ranked, row)
                    if len(ranked) > limit:
                        ranked.pop()
        if len(ranked) >= limit:
            self.bound = ranked[-1][0]

    def result(self) -> list[Neighbor[K]]:
        ranked = self._ranked
        if self._limit is None:
            ranked.sort()
        return [Neighbor(key, distance, lat, lng) for distance, key, lat, lng in ranked]


def _rows(
    members: Collection[K], positions: Mapping[K, tuple[float, float]]
) -> Iterable[tuple[K, float, float]]:
    """A cell's members as ``(key, lat, lng)``; read from the arrays of a :class:`CellMembers`."""
    if type(members) is CellMembers:
        return zip(members.keys, members.lats, members.lngs, strict=True)
    return [(key, *positions[key]) for key in members]


def validate_limit(limit: int | None) -> None:
    """Raise ``InvalidArgument`` unless ``limit`` is ``None`` or an int >= 0."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidArgument(f"k must be an int >= 0, got {limit!r}")


def validate_radius(radius_m: float) -> None:
    """Raise ``InvalidArgument`` unless ``radius_m`` is a number >= 0 (inf allowed)."""
    if (
        isinstance(radius_m, bool)
        or not isinstance(radius_m, int | float)
        or math.isnan(radius_m)
        or radius_m < 0
    ):
        raise InvalidArgument(f"radius must be a number >= 0 (inf allowed), got {radius_m!r}")


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
    validate_limit(limit)
    validate_radius(radius_m)
    origin = latlng_to_cell(lat, lng, resolution)
    if limit == 0 or not members_by_cell:
        return []
    ranking: _Ranking[K] = _Ranking(lat, lng, limit, radius_m, predicate)
    popped = _walk(members_by_cell, positions, origin, ranking)
    if popped is not None:
        _scan_unvisited(members_by_cell, positions, popped, ranking)
    return ranking.result()


def _walk(
    members_by_cell: Mapping[Cell, Collection[K]],
    positions: Mapping[K, tuple[float, float]],
    origin: Cell,
    ranking: _Ranking[K],
) -> set[Cell] | None:
    """Steps 1-2: pop cells best-first. Returns the popped cells if the sparse switch fired."""
    populated = len(members_by_cell)
    get = members_by_cell.get
    sin, asin, sqrt = math.sin, math.asin, math.sqrt
    heappush, heappop, neighbor_discs = heapq.heappush, heapq.heappop, _neighbor_discs
    phi, cos_phi, lng = ranking.phi, ranking.cos_phi, ranking.lng
    heap: list[tuple[float, Cell]] = [(-math.inf, origin)]
    seen = {origin}
    popped: set[Cell] = set()
    while heap:
        lower, cell = heappop(heap)
        if lower > ranking.bound:
            return None
        members = get(cell)
        if members is not None:
            ranking.scan(_rows(members, positions))
        popped.add(cell)
        bound = ranking.bound
        for neighbor, c_phi, c_cos, c_lng, reach in neighbor_discs(cell):
            if neighbor in seen:
                continue
            seen.add(neighbor)
            # _Ranking.lower_bound(neighbor), inlined (the walk's hottest lines).
            s = sin((c_phi - phi) * 0.5)
            t = sin((c_lng - lng) * _RADIANS * 0.5)
            a = s * s + cos_phi * c_cos * t * t
            to_center = _DIAMETER_M * asin(sqrt(a if a < 1.0 else 1.0))
            lower = to_center - reach
            if to_center + reach > _NEAR_ANTIPODE_M:
                lower -= _ANTIPODE_SLACK_M
            if lower <= bound:
                heappush(heap, (lower, neighbor))
        if len(seen) > populated:
            return popped
    return None


def _scan_unvisited(
    members_by_cell: Mapping[Cell, Collection[K]],
    positions: Mapping[K, tuple[float, float]],
    popped: set[Cell],
    ranking: _Ranking[K],
) -> None:
    """Step 3: offer the members of every populated cell not popped, best bound first."""
    pending: list[tuple[float, Cell]] = []
    for cell in members_by_cell:
        if cell in popped:
            continue
        lower = ranking.lower_bound(cell)
        if lower <= ranking.bound:
            pending.append((lower, cell))
    pending.sort()
    for lower, cell in pending:
        if lower > ranking.bound:
            break
        ranking.scan(_rows(members_by_cell[cell], positions))
