"""The bookkeeping of phones that left, without I/O and with a pinned clock."""

from __future__ import annotations

from mobile_api.departures import Departure, Departures

T0 = 1_000.0


def test_a_departure_is_due_once_it_is_old_enough_and_only_once() -> None:
    """``due`` hands out departures at least ``after_s`` old, oldest first, and removes them."""
    gone = Departures()
    gone.left("w-1", "org", T0)
    gone.left("w-2", "org", T0 + 5)
    assert gone.due(T0 + 9.9, 10.0) == []
    assert gone.due(T0 + 10, 10.0) == [Departure("w-1", "org", T0)]
    assert gone.due(T0 + 60, 10.0) == [Departure("w-2", "org", T0 + 5)]
    assert gone.due(T0 + 600, 10.0) == []
    assert len(gone) == 0


def test_a_worker_who_returns_is_not_due_and_a_later_departure_restarts_the_wait() -> None:
    """``returned`` cancels a departure; leaving again counts from the new time."""
    gone = Departures()
    gone.left("w-1", "org", T0)
    gone.left("w-2", "org", T0)
    gone.returned("w-1")
    gone.left("w-2", "org", T0 + 8)
    assert gone.due(T0 + 10, 10.0) == []
    assert gone.due(T0 + 18, 10.0) == [Departure("w-2", "org", T0 + 8)]
