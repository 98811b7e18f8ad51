"""The members of one cell: keys and positions in parallel arrays.

:class:`CellMembers` is the bucket :class:`geo.index.CellIndex` keeps per
populated cell. Keys sit in a list and latitudes/longitudes in two
``array('d')``, slot by slot, so a query reads a cell's positions from
contiguous memory instead of chasing one tuple and two floats per member
through a large dictionary. Insertion, move and removal are ``O(1)``
(removal moves the last slot into the freed one).

It is a ``Collection`` of its keys, which is all :func:`geo.search.search`
asks of a cell's members; the search reads the arrays directly when it gets one.

Rules for callers: positions must already be valid (see :mod:`geo.coords`);
the bucket does not check them. Not thread-safe.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["CellMembers", "K", "OrderedKey"]


class OrderedKey(Protocol):
    """A member key: hashable and orderable (``str`` and ``int`` qualify)."""

    def __hash__(self) -> int: ...

    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=OrderedKey)


class CellMembers(Collection[K]):
    """Keys with a position each; iterating yields the keys, in no particular order."""

    __slots__ = ("_slot", "keys", "lats", "lngs")

    def __init__(self) -> None:
        self.keys: list[K] = []
        self.lats = array("d")
        self.lngs = array("d")
        self._slot: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[K]:
        return iter(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self._slot

    def put(self, key: K, lat: float, lng: float) -> None:
        """Add ``key`` at ``(lat, lng)``, or move it there if present."""
        slot = self._slot.get(key)
        if slot is None:
            self._slot[key] = len(self.keys)
            self.keys.append(key)
            self.lats.append(lat)
            self.lngs.append(lng)
        else:
            self.lats[slot] = lat
            self.lngs[slot] = lng

    def discard(self, key: K) -> None:
        """Remove ``key`` if present."""
        slot = self._slot.pop(key, None)
        if slot is None:
            return
        keys, lats, lngs = self.keys, self.lats, self.lngs
        last = len(keys) - 1
        if slot != last:
            moved = keys[slot] = keys[last]
            lats[slot] = lats[last]
            lngs[slot] = lngs[last]
            self._slot[moved] = slot
        keys.pop()
        lats.pop()
        lngs.pop()

    def position(self, key: K) -> tuple[float, float] | None:
        """The ``(lat, lng)`` of ``key``, or ``None`` if absent."""
        slot = self._slot.get(key)
        if slot is None:
            return None
        return self.lats[slot], self.lngs[slot]
