"""Phones that left: who closed their socket here, and when, until their position is forgotten.

A technician whose phone is gone (socket closed, not back on any instance)
for longer than ``Settings.disconnect_forget_s`` leaves the location index
and loses the last fix (``DispatchService.forget_position``): a position
that nobody refreshes is personal data with no use left. ``Departures`` is
the bookkeeping, without I/O; ``Runtime.forget_departed`` is the sweep the
app runs every ``SWEEP_S``.

Rules for callers: call ``left`` when a worker's current socket on this
instance closes, ``returned`` when the worker connects here again; times are
the service's clock. A departure is this instance's memory only: if the
instance stops first, that worker's fix is forgotten only when the worker
goes off duty or leaves again later (it still goes stale for matching after
``FIELDCLOUD_FIX_MAX_AGE_S``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["SWEEP_S", "Departure", "Departures"]

SWEEP_S = 1.0
"""How often the app looks for departures older than the retention setting."""


@dataclass(frozen=True, slots=True)
class Departure:
    """A worker whose socket closed at ``at``."""

    worker_id: str
    org_id: str
    at: float


class Departures:
    """Open departures, oldest first (each worker once)."""

    __slots__ = ("_left",)

    def __init__(self) -> None:
        self._left: OrderedDict[str, Departure] = OrderedDict()

    def __len__(self) -> int:
        return len(self._left)

    def left(self, worker_id: str, org_id: str, at: float) -> None:
        """The worker's socket closed at ``at`` (a later departure replaces an earlier one)."""
        self._left.pop(worker_id, None)
        self._left[worker_id] = Departure(worker_id, org_id, at)

    def returned(self, worker_id: str) -> None:
        """The worker connected again: nothing to forget."""
        self._left.pop(worker_id, None)

    def due(self, now: float, after_s: float) -> list[Departure]:
        """Take out the departures at least ``after_s`` old at ``now``, oldest first."""
        found: list[Departure] = []
        left = self._left
        while left:
            first = next(iter(left.values()))
            if now - first.at < after_s:
                break
            found.append(left.popitem(last=False)[1])
        return found
