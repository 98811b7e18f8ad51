"""CellIndex bookkeeping and the contract of its queries."""

from __future__ import annotations

import math

import pytest

from geo import (
    CellIndex,
    InvalidArgument,
    InvalidCoordinates,
    InvalidResolution,
    Neighbor,
    haversine_m,
    latlng_to_cell,
)

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)


def test_upsert_places_a_member_in_its_cell() -> None:
    """A new member is findable by key and by the cell of its position."""
    index: CellIndex[str] = CellIndex()
    cell = index.upsert("w1", *PARIS)
    assert cell == latlng_to_cell(*PARIS, 9)
    assert index.resolution == 9
    assert len(index) == 1
    assert "w1" in index
    assert "w2" not in index
    assert index.position("w1") == PARIS
    assert index.cell_of("w1") == cell
    assert index.members(cell) == frozenset({"w1"})
    assert index.cells() == 1


def test_a_moved_member_leaves_its_old_cell() -> None:
    """Moving to another cell removes the member from the old one and drops it if empty."""
    index: CellIndex[str] = CellIndex(resolution=7)
    paris = index.upsert("w1", *PARIS)
    index.upsert("w2", *PARIS)
    london = index.upsert("w1", *LONDON)
    assert london != paris
    assert index.members(paris) == frozenset({"w2"})
    assert index.members(london) == frozenset({"w1"})
    assert index.cells() == 2
    index.upsert("w2", *LONDON)
    assert index.members(paris) == frozenset()
    assert index.cells() == 1
    assert len(index) == 2


def test_a_move_within_a_cell_only_updates_the_position() -> None:
    """A small move inside the same cell keeps the cell and records the new position."""
    index: CellIndex[str] = CellIndex(resolution=5)
    cell = index.upsert("w1", *PARIS)
    assert index.upsert("w1", PARIS[0] + 0.0001, PARIS[1]) == cell
    assert index.position("w1") == (PARIS[0] + 0.0001, PARIS[1])
    assert index.members(cell) == frozenset({"w1"})


def test_remove_forgets_the_member_and_drops_empty_cells() -> None:
    """remove reports presence, forgets position and cell, and leaves no empty cell behind."""
    index: CellIndex[str] = CellIndex()
    cell = index.upsert("w1", *PARIS)
    assert index.remove("w1") is True
    assert index.remove("w1") is False
    assert "w1" not in index
    assert index.position("w1") is None
    assert index.cell_of("w1") is None
    assert index.members(cell) == frozenset()
    assert index.cells() == 0
    assert len(index) == 0


def test_members_is_a_snapshot() -> None:
    """The set returned by members does not change when the index does."""
    index: CellIndex[str] = CellIndex()
    cell = index.upsert("w1", *PARIS)
    snapshot = index.members(cell)
    index.upsert("w2", *PARIS)
    assert snapshot == frozenset({"w1"})


def test_bad_position_leaves_the_index_unchanged() -> None:
    """An upsert with invalid coordinates raises and neither adds nor moves the member."""
    index: CellIndex[str] = CellIndex()
    cell = index.upsert("w1", *PARIS)
    with pytest.raises(InvalidCoordinates):
        index.upsert("w1", math.nan, 0.0)
    with pytest.raises(InvalidCoordinates):
        index.upsert("w2", 0.0, 200.0)
    assert index.position("w1") == PARIS
    assert index.cell_of("w1") == cell
    assert len(index) == 1


def test_bad_resolution_is_refused() -> None:
    """An index resolution outside 0..15 raises InvalidResolution."""
    with pytest.raises(InvalidResolution):
        CellIndex(resolution=16)


def test_bad_query_arguments_are_refused() -> None:
    """Negative k, negative or NaN radius and bad query points raise GeoError subclasses."""
    index: CellIndex[str] = CellIndex()
    index.upsert("w1", *PARIS)
    with pytest.raises(InvalidArgument):
        index.nearest(*PARIS, -1, 1_000.0)
    with pytest.raises(InvalidArgument):
        index.nearest(*PARIS, 1, -1.0)
    with pytest.raises(InvalidArgument):
        index.within(*PARIS, math.nan)
    with pytest.raises(InvalidCoordinates):
        index.nearest(95.0, 0.0, 1, 1_000.0)


def test_empty_index_and_zero_k_return_nothing() -> None:
    """Queries on an empty index, or with k = 0, return an empty list."""
    index: CellIndex[str] = CellIndex()
    assert index.nearest(*PARIS, 3, math.inf) == []
    index.upsert("w1", *PARIS)
    assert index.nearest(*PARIS, 0, math.inf) == []


def test_nearest_returns_sorted_neighbors_with_positions() -> None:
    """nearest returns Neighbor records sorted by distance, with keys, distances and positions."""
    index: CellIndex[str] = CellIndex()
    index.upsert("london", *LONDON)
    index.upsert("paris", *PARIS)
    found = index.nearest(PARIS[0] + 0.01, PARIS[1], 5, math.inf)
    assert [n.key for n in found] == ["paris", "london"]
    assert found[0] == Neighbor(
        "paris", haversine_m(PARIS[0] + 0.01, PARIS[1], *PARIS), PARIS[0], PARIS[1]
    )
    assert index.nearest(PARIS[0] + 0.01, PARIS[1], 5, 100_000.0) == found[:1]


def test_equal_distances_are_ordered_by_key() -> None:
    """Members at the same position come back ordered by key, and k cuts by that order."""
    index: CellIndex[str] = CellIndex()
    for key in ["c", "a", "d", "b"]:
        index.upsert(key, *PARIS)
    assert [n.key for n in index.nearest(*PARIS, 2, 10.0)] == ["a", "b"]
    assert [n.key for n in index.within(*PARIS, 10.0)] == ["a", "b", "c", "d"]


def test_integer_keys_work() -> None:
    """The index is generic over orderable hashable keys such as ints."""
    index: CellIndex[int] = CellIndex(resolution=3)
    index.upsert(2, *LONDON)
    index.upsert(1, *PARIS)
    assert [n.key for n in index.within(*PARIS, 500_000.0)] == [1, 2]


def test_predicate_is_applied_lazily() -> None:
    """The predicate runs at most once per member, never beyond the radius, not for all members."""
    index: CellIndex[str] = CellIndex(resolution=9)
    for i in range(200):
        index.upsert(f"w{i:03d}", PARIS[0] + i * 0.01, PARIS[1])
    calls: list[str] = []

    def available(key: str) -> bool:
        calls.append(key)
        return int(key[1:]) % 3 == 0

    found = index.nearest(*PARIS, 2, 50_000.0, available)
    assert [n.key for n in found] == ["w000", "w003"]
    assert len(calls) == len(set(calls))
    assert len(calls) < 20
    calls.clear()
    inside = index.within(*PARIS, 5_000.0, available)
    assert [n.key for n in inside] == ["w000", "w003"]
    assert all(haversine_m(*PARIS, *(index.position(k) or PARIS)) <= 5_000.0 for k in calls)
    assert len(calls) == len(set(calls))
