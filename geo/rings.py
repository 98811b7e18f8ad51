"""Walking exact grid rings outwards from a cell, one ring at a time.

:class:`RingWalk` yields ring 0 (the origin), then ring 1, ring 2, ... where
ring ``r`` holds exactly the cells at grid distance ``r`` from the origin. Each
ring is built from the previous one by breadth-first expansion: ring ``r + 1``
is the set of neighbours of ring ``r`` that have not been seen yet. That is the
definition of grid distance, so the rings are exact around pentagons (which
have five neighbours) and across icosahedron faces, and they stay exact when
they reach around the globe -- where h3 4.5's own ``grid_ring`` goes wrong
(see :func:`geo.cells.grid_ring`).

Cost: one memoised :func:`geo.cells.grid_neighbors` lookup per cell of the
previous ring, so ``O(size of ring r)`` for ring ``r``, and the walk keeps a set
of every cell it has produced. Once every cell of the resolution has been
produced, :meth:`RingWalk.next_ring` returns ``[]``.

:mod:`geo.search` no longer walks rings (it expands cells best-first); the
Redis location index uses this walk to decide which cells to fetch.

Rules for callers:

* A walk is single-use and not thread-safe; create one per query.
* The cells of a ring come in a deterministic but unspecified order.
"""

from __future__ import annotations

from geo.cells import Cell, grid_neighbors, parse_cell

__all__ = ["RingWalk"]


class RingWalk:
    """Successive exact grid rings around ``origin``."""

    __slots__ = ("_origin", "_radius", "_ring", "_seen")

    def __init__(self, origin: Cell) -> None:
        self._origin = parse_cell(origin)
        self._seen: set[Cell] = set()
        self._ring: list[Cell] = []
        self._radius = -1

    @property
    def radius(self) -> int:
        """Grid distance of the last ring returned; ``-1`` before the first call."""
        return self._radius

    @property
    def seen_count(self) -> int:
        """How many cells the walk has returned so far (the disk of :attr:`radius`)."""
        return len(self._seen)

    def has_seen(self, cell: Cell) -> bool:
        """Whether ``cell`` was in one of the rings returned so far."""
        return cell in self._seen

    def next_ring(self) -> list[Cell]:
        """Return the next ring; ``[]`` once the disk covers every cell."""
        if self._radius < 0:
            ring = [self._origin]
        else:
            seen = self._seen
            ring = []
            for cell in self._ring:
                for neighbour in grid_neighbors(cell):
                    if neighbour not in seen:
                        seen.add(neighbour)
                        ring.append(neighbour)
        if not ring:
            self._ring = ring
            return ring
        self._seen.update(ring)
        self._ring = ring
        self._radius += 1
        return ring
