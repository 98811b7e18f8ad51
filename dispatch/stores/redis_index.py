"""Redis location index: the ``LocationIndex`` port over per-cell hashes.

Layout (see ``keys``): per organisation, one hash per populated H3 cell
(``worker id -> "lat,lng"``), a ``where`` hash (``worker id -> cell``) and a
set of populated cells, all in one Cluster slot. Writes go through the
``RedisWriter`` (batched; one atomic script per organisation per batch).

Queries give the same answers as the memory index (``geo.CellIndex``)
because they run the very same algorithm, ``geo.search.search``, over a
snapshot that is filled from Redis on demand: when the search asks for a
cell that has not been fetched, the attempt stops, the next rings are
fetched in one pipeline round trip (twice as many rings each time), and the
search starts over on the larger snapshot (it is cheap compared with a round
trip). The first round trip also reads the number of populated cells and up
to 64 of them, so that a sparse organisation is answered from the populated
cells in about two round trips. The predicate is applied client-side, at
most once per worker per query.

Rules for callers: positions are validated like the memory index's (``geo``
errors, nothing written); a query sees every write this process completed
before it started; writes of other instances racing with a query may or may
not be seen (a worker moving during a query is reported once, at one of its
positions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rex

from geo import Cell, RingWalk, latlng_to_cell, validate_latlng
from geo.search import search

from .keys import Keys
from .ports import Nearby
from .redis import RedisWriter, Script, redis_errors

__all__ = ["FETCH_SCRIPT", "RedisLocationIndex"]

_SAMPLE = 64
"""Populated cells read with the first round trip (all of them if there are no more)."""

_MAX_CELLS_PER_TRIP = 4_096


FETCH_SCRIPT = Script(
    """
-- Read the listed cells of one organisation; return only the populated ones.
-- KEYS[1] = the populated-cells set (routes the call to the org's slot);
-- ARGV[1] = the cell key prefix, ARGV[2..] = cell hexes.
-- Reply: cell hex, {worker id, "lat,lng", ...}, cell hex, {...}, ...
local out, prefix = {}, ARGV[1]
for i = 2, #ARGV do
  local members = redis.call('HGETALL', prefix .. ARGV[i])
  if #members > 0 then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = members
  end
end
return out
"""
)


class _Miss(Exception):
    """The search needs data the snapshot does not hold yet."""


class _Snapshot(Mapping[Cell, set[str]]):
    """What has been read of one organisation's index, as ``geo.search`` sees it."""

    def __init__(self) -> None:
        self.members: dict[Cell, set[str]] = {}
        self.where: dict[str, Cell] = {}
        self.positions: dict[str, tuple[float, float]] = {}
        self.count: int | None = None
        self.populated: list[Cell] | None = None
        self.need = ""  # "first", "ring" or "scan"

    def add(self, cell: Cell, found: Mapping[str, str]) -> None:
        """Record the members read for ``cell`` (a worker seen moving keeps its last cell)."""
        bucket = self.members.setdefault(cell, set())
        for worker_id, pos in found.items():
            lat, lng = pos.split(",")
            old = self.where.get(worker_id)
            if old is not None and old != cell:
                self.members[old].discard(worker_id)
            self.where[worker_id] = cell
            self.positions[worker_id] = (float(lat), float(lng))
            bucket.add(worker_id)

    # -- the Mapping that geo.search reads ------------------------------------

    def __len__(self) -> int:
        if self.count is None:
            self.need = "first"
            raise _Miss
        return self.count

    def get(self, cell: Cell, default: set[str] | None = None) -> set[str] | None:  # type: ignore[override]
        """Ring walk access: a miss asks for more rings."""
        members = self.members.get(cell)
        if members is None:
            self.need = "ring"
            raise _Miss
        return members or default

    def __getitem__(self, cell: Cell) -> set[str]:
        """Scan access: a miss asks for every populated cell."""
        members = self.members.get(cell)
        if members is None:
            self.need = "scan"
            raise _Miss
        return members

    def __iter__(self) -> Iterator[Cell]:
        if self.populated is None:
            self.need = "scan"
            raise _Miss
        return iter(self.populated)


class _RingPlan:
    """Which rings to fetch next: the search's own walk, a doubling number at a time."""

    def __init__(self, origin: Cell) -> None:
        self._walk = RingWalk(origin)
        self._rings_per_trip = 2
        self._next: list[Cell] | None = None

    def peek(self, populated: int | None) -> list[Cell]:
        """The cells of the next trip's rings (the same until ``advance``)."""
        if self._next is not None:
            return self._next
        cells: list[Cell] = []
        for _ in range(self._rings_per_trip):
            ring = self._walk.next_ring()
            if not ring:
                break
            cells.extend(ring)
            radius, seen = self._walk.radius, self._walk.seen_count
            if populated is not None and (populated < 6 * (radius + 1) or seen > populated):
                break  # geo.search switches to scanning populated cells here
            if len(cells) >= _MAX_CELLS_PER_TRIP:
                break
        self._next = cells
        return cells

    def advance(self) -> None:
        """The peeked cells were fetched; the next ``peek`` walks on (twice as far)."""
        self._next = None
        self._rings_per_trip *= 2


class RedisLocationIndex:
    """``LocationIndex`` in Redis; see the module docstring."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, writer: RedisWriter, resolution: int
    ) -> None:
        self._redis = client
        self._keys = keys
        self._writer = writer
        self._resolution = resolution

    async def upsert(self, org_id: str, worker_id: str, lat: float, lng: float) -> None:
        cell = latlng_to_cell(lat, lng, self._resolution)
        await self._writer.upsert(org_id, worker_id, cell, lat, lng)

    async def remove(self, org_id: str, worker_id: str) -> None:
        await self._writer.remove(org_id, worker_id)

    async def nearest(
        self,
        org_id: str,
        lat: float,
        lng: float,
        k: int,
        max_radius_m: float,
        predicate: Callable[[str], bool] | None = None,
    ) -> list[Nearby]:
        validate_latlng(lat, lng)
        snap = _Snapshot()
        plan = _RingPlan(latlng_to_cell(lat, lng, self._resolution))
        check = _memo(predicate)
        while True:
            try:
                hits = search(
                    snap, snap.positions, self._resolution, lat, lng, k, max_radius_m, check
                )
            except _Miss:
                await self._fill(org_id, snap, plan)
                continue
            return [Nearby(h.key, h.distance_m, h.lat, h.lng) for h in hits]

    async def _fill(self, org_id: str, snap: _Snapshot, plan: _RingPlan) -> None:
        """Read what the search missed; a script unknown to the server is loaded once."""
        with redis_errors():
            try:
                await self._fill_once(org_id, snap, plan)
            except rex.NoScriptError:
                await self._redis.script_load(FETCH_SCRIPT.text)
                await self._fill_once(org_id, snap, plan)

    async def _fill_once(self, org_id: str, snap: _Snapshot, plan: _RingPlan) -> None:
        """One round trip (two for the first scan of a large organisation)."""
        cells_key = self._keys.cells(org_id)
        pipe = self._redis.pipeline(transaction=False)
        if snap.need == "first":
            cells = plan.peek(None)
            pipe.scard(cells_key)
            pipe.srandmember(cells_key, _SAMPLE)
            count, sample, found = await self._fetch(pipe, org_id, cells)
            snap.count = int(count)
            if snap.count <= len(sample):
                snap.populated = [Cell(int(c, 16)) for c in sample]
        elif snap.need == "ring":
            cells = plan.peek(snap.count)
            (found,) = await self._fetch(pipe, org_id, cells)
        else:
            if snap.populated is None:
                hexes = await self._redis.smembers(cells_key)
                snap.populated = [Cell(int(c, 16)) for c in hexes]
                snap.count = len(snap.populated)
            cells = [c for c in snap.populated if c not in snap.members]
            (found,) = await self._fetch(pipe, org_id, cells)
        if snap.need == "ring":
            plan.advance()
            if not cells:
                raise RuntimeError("the ring plan fell behind the search")  # pragma: no cover
        contents = _decode_cells(found)
        for cell in cells:
            snap.add(cell, contents.get(Keys.cell_name(cell), {}))
        if snap.need == "first":
            plan.advance()

    async def _fetch(self, pipe: Any, org_id: str, cells: Sequence[Cell]) -> list[Any]:
        """Execute ``pipe`` plus one ``FETCH_SCRIPT`` call for ``cells`` (its reply last)."""
        keys = self._keys
        names = [Keys.cell_name(c) for c in cells]
        pipe.evalsha(FETCH_SCRIPT.sha, 1, keys.cells(org_id), keys.cell_prefix(org_id), *names)
        result: list[Any] = await pipe.execute()
        return result


def _decode_cells(reply: list[Any]) -> dict[str, dict[str, str]]:
    """``FETCH_SCRIPT``'s flat reply as ``{cell hex: {worker id: "lat,lng"}}``."""
    found: dict[str, dict[str, str]] = {}
    for i in range(0, len(reply), 2):
        flat = reply[i + 1]
        found[reply[i]] = dict(zip(flat[::2], flat[1::2], strict=True))
    return found


def _memo(predicate: Callable[[str], bool] | None) -> Callable[[str], bool] | None:
    """``predicate``, called at most once per key (the search may start over)."""
    if predicate is None:
        return None
    seen: dict[str, bool] = {}

    def check(key: str) -> bool:
        answer = seen.get(key)
        if answer is None:
            answer = seen[key] = predicate(key)
        return answer

    return check
