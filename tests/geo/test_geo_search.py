"""Edge cases of the search's pruning: member screens at the bound, the antipode, plain mappings."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import (
    EARTH_RADIUS_M,
    Cell,
    CellIndex,
    cell_boundary,
    cell_to_latlng,
    circumradius_m,
    grid_disk,
    haversine_m,
    latlng_to_cell,
    pentagons,
)
from geo.search import search

Point = tuple[float, float]
HALF_CIRCUMFERENCE_M = math.pi * EARTH_RADIUS_M


def shifted(origin: Point, dlat: float, dlng: float) -> Point:
    """``origin`` moved by degrees, latitude clamped and longitude wrapped into range."""
    lat = max(-90.0, min(90.0, origin[0] + dlat))
    lng = (origin[1] + dlng + 180.0) % 360.0 - 180.0
    return lat, lng


def antipode(point: Point) -> Point:
    lng = point[1] + 180.0 if point[1] <= 0.0 else point[1] - 180.0
    return -point[0], lng


def brute(points: dict[str, Point], query: Point, k: int | None, radius_m: float) -> list[object]:
    ranked = sorted((haversine_m(*query, *p), key) for key, p in points.items())
    inside = [row for row in ranked if row[0] <= radius_m]
    return list(inside if k is None else inside[:k])


offsets = st.one_of(
    st.floats(-1e-4, 1e-4),
    st.floats(-0.05, 0.05),
    st.floats(-10.0, 10.0),
)


@settings(max_examples=400, deadline=None)
@given(
    query=st.tuples(st.floats(-90.0, 90.0), st.floats(-180.0, 180.0)),
    dlat=offsets,
    dlng=offsets,
    resolution=st.sampled_from([0, 4, 9, 13]),
    nudge=st.sampled_from([-1.0, 0.0, 1.0, None]),
)
def test_a_member_at_the_radius_is_found_exactly_then(
    query: Point, dlat: float, dlng: float, resolution: int, nudge: float | None
) -> None:
    """A lone member is returned iff its haversine is within the radius, to the last bit.

    The radius is the member's own distance or its neighbouring floats, where
    the latitude and haversine screens, and the cell bounds, must not cut.
    """
    member = shifted(query, dlat, dlng)
    distance = haversine_m(*query, *member)
    if nudge is None:
        radius = random.Random(f"{query}{member}").uniform(0.0, 2.0) * distance
    else:
        radius = max(0.0, math.nextafter(distance, math.inf * nudge) if nudge else distance)
    index: CellIndex[str] = CellIndex(resolution)
    index.upsert("m", *member)
    expected = [(distance, "m")] if distance <= radius else []
    assert [(n.distance_m, n.key) for n in index.within(*query, radius)] == expected
    assert [(n.distance_m, n.key) for n in index.nearest(*query, 1, radius)] == expected


@pytest.mark.parametrize("resolution", [6, 11, 15])
def test_members_near_the_antipode_are_ranked_exactly(resolution: int) -> None:
    """Around the antipode haversine is ill-conditioned; results still match brute force."""
    rng = random.Random(resolution)
    for _ in range(5):
        query = (rng.uniform(-80.0, 80.0), rng.uniform(-180.0, 180.0))
        far = antipode(query)
        spread = rng.choice([1e-6, 1e-4, 1e-2])
        points = {
            f"w{i}": shifted(far, rng.uniform(-spread, spread), rng.uniform(-spread, spread))
            for i in range(40)
        }
        index: CellIndex[str] = CellIndex(resolution)
        for key, point in points.items():
            index.upsert(key, *point)
        for k, radius in [(3, math.inf), (40, math.inf), (5, HALF_CIRCUMFERENCE_M - 50.0)]:
            found = index.nearest(*query, k, radius)
            assert [(n.distance_m, n.key) for n in found] == brute(points, query, k, radius)
        found = index.within(*query, HALF_CIRCUMFERENCE_M - 5.0)
        expected = brute(points, query, None, HALF_CIRCUMFERENCE_M - 5.0)
        assert [(n.distance_m, n.key) for n in found] == expected


def test_plain_sets_and_a_position_dict_give_the_same_answers() -> None:
    """search() over ``{cell: set of keys}`` plus positions (as the Redis index passes) agrees."""
    rng = random.Random(5)
    points = {
        f"w{i}": (48.85 + rng.uniform(-0.05, 0.05), 2.35 + rng.uniform(-0.08, 0.08))
        for i in range(3_000)
    }
    index: CellIndex[str] = CellIndex(9)
    by_cell: dict[Cell, set[str]] = {}
    for key, point in points.items():
        index.upsert(key, *point)
        by_cell.setdefault(latlng_to_cell(*point, 9), set()).add(key)
    for _ in range(50):
        query = (48.85 + rng.uniform(-0.06, 0.06), 2.35 + rng.uniform(-0.1, 0.1))
        k = rng.randint(1, 30)
        radius = rng.choice([100.0, 1_000.0, 5_000.0, math.inf])
        plain = search(by_cell, points, 9, *query, k, radius)
        assert plain == index.nearest(*query, k, radius)
        assert [(n.distance_m, n.key) for n in plain] == brute(points, query, k, radius)


@pytest.mark.parametrize("resolution", [0, 2, 5, 9, 12, 15])
def test_members_on_cell_vertices_are_not_pruned(resolution: int) -> None:
    """Members at the cells' farthest points (their vertices) test the circumradius bound."""
    rng = random.Random(resolution)
    for anchor in [(48.85, 2.35), (-89.9, 10.0), (10.0, 179.999), cell_to_latlng(pentagons(0)[3])]:
        origin = latlng_to_cell(*anchor, resolution)
        points = {
            f"v{i}": vertex
            for i, vertex in enumerate(
                {v for cell in grid_disk(origin, 3) for v in cell_boundary(cell)}
            )
        }
        index: CellIndex[str] = CellIndex(resolution)
        for key, point in points.items():
            index.upsert(key, *point)
        reach = 4.0 * circumradius_m(origin)
        for _ in range(25):
            query = shifted(anchor, *(rng.uniform(-1.0, 1.0) * reach / 111_000.0 for _ in "ab"))
            k = rng.randint(1, 4)
            found = index.nearest(*query, k, math.inf)
            assert [(n.distance_m, n.key) for n in found] == brute(points, query, k, math.inf)


@pytest.mark.parametrize("resolution", [1, 4, 9, 15])
def test_a_vertex_member_is_found_from_just_beyond_it(resolution: int) -> None:
    """Query just outside a cell, beyond one of its vertices, with the radius at that vertex.

    The member's cell is then barely within the radius (by ~0.1 % of its
    circumradius), so any underestimate of the circumradius would prune it.
    """
    for anchor in [(48.85, 2.35), (-33.9, 151.2), cell_to_latlng(pentagons(resolution)[7])]:
        origin = latlng_to_cell(*anchor, resolution)
        for cell in grid_disk(origin, 1):
            for vertex in cell_boundary(cell):
                home = latlng_to_cell(*vertex, resolution)
                c_lat, c_lng = cell_to_latlng(home)
                query = (
                    vertex[0] + (vertex[0] - c_lat) * 1e-3,
                    vertex[1] + (vertex[1] - c_lng) * 1e-3,
                )
                index: CellIndex[str] = CellIndex(resolution)
                index.upsert("v", *vertex)
                radius = haversine_m(*query, *vertex)
                assert [n.key for n in index.within(*query, radius)] == ["v"]
                assert [n.key for n in index.nearest(*query, 1, radius)] == ["v"]
