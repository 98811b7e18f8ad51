"""CellIndex.nearest and CellIndex.within agree exactly with a brute-force scan.

Points cluster near the antimeridian, near the poles, around H3 pentagons, or
spread over the whole sphere; resolutions cover 0..15; radii run from 10 m to
beyond half the Earth's circumference. Example budgets scale with the active
Hypothesis profile (``--hypothesis-profile``), so a deeper run needs no edit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo import (
    EARTH_RADIUS_M,
    CellIndex,
    average_edge_length_m,
    cell_to_latlng,
    haversine_m,
    pentagons,
)

pytestmark = pytest.mark.slow

Point = tuple[float, float]
Predicate = Callable[[str], bool]

_ACTIVE = settings()
SCATTERED = settings(
    _ACTIVE,
    max_examples=3 * _ACTIVE.max_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DENSE = settings(
    _ACTIVE,
    max_examples=_ACTIVE.max_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

REGIONS = ("antimeridian", "pole", "pentagon", "uniform")
HALF_CIRCUMFERENCE_M = math.pi * EARTH_RADIUS_M


def even_key(key: str) -> bool:
    """Keep members whose number is even (keys look like ``w17``)."""
    return int(key[1:]) % 2 == 0


def destination(origin: Point, bearing_deg: float, distance_m: float) -> Point:
    """The point ``distance_m`` from ``origin`` along a great circle, longitude wrapped."""
    phi1 = math.radians(origin[0])
    lam1 = math.radians(origin[1])
    theta = math.radians(bearing_deg)
    delta = distance_m / EARTH_RADIUS_M
    sin_phi2 = math.sin(phi1) * math.cos(delta) + math.cos(phi1) * math.sin(delta) * math.cos(theta)
    phi2 = math.asin(max(-1.0, min(1.0, sin_phi2)))
    lam2 = lam1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi1),
        math.cos(delta) - math.sin(phi1) * sin_phi2,
    )
    lng = (math.degrees(lam2) + 180.0) % 360.0 - 180.0
    return math.degrees(phi2), lng


def uniform_point(z: float, lng: float) -> Point:
    """A point uniform on the sphere from ``z`` uniform in [-1, 1] and ``lng`` in [-180, 180]."""
    return math.degrees(math.asin(z)), lng


def brute_force(
    points: dict[str, Point],
    query: Point,
    limit: int | None,
    radius_m: float,
    predicate: Predicate | None,
) -> list[tuple[float, str]]:
    """Every qualifying member as ``(distance, key)``, sorted, cut to ``limit``."""
    ranked = sorted(
        (haversine_m(*query, *position), key)
        for key, position in points.items()
        if predicate is None or predicate(key)
    )
    inside = [row for row in ranked if row[0] <= radius_m]
    return inside if limit is None else inside[:limit]


@dataclass(frozen=True)
class Query:
    point: Point
    k: int
    radius_m: float
    filtered: bool


@dataclass(frozen=True)
class Scenario:
    resolution: int
    region: str
    points: dict[str, Point]
    queries: list[Query]


radii = st.one_of(
    st.floats(1.0, math.log10(2 * HALF_CIRCUMFERENCE_M)).map(lambda e: 10.0**e),
    st.just(math.inf),
)


@st.composite
def anchors(draw: st.DrawFn, region: str, resolution: int) -> Point | None:
    """Where the cluster of a region sits (``None`` for the whole sphere)."""
    if region == "antimeridian":
        return draw(st.floats(-70.0, 70.0)), 180.0
    if region == "pole":
        return draw(st.sampled_from([89.9, -89.9])), draw(st.floats(-180.0, 180.0))
    if region == "pentagon":
        pentagon_res = draw(st.one_of(st.just(resolution), st.integers(0, 15)))
        return cell_to_latlng(draw(st.sampled_from(pentagons(pentagon_res))))
    return None


def points_around(anchor: Point | None, spread_m: float) -> st.SearchStrategy[Point]:
    """Points within ``spread_m`` of ``anchor``, or uniform on the sphere without one."""
    if anchor is None:
        return st.builds(uniform_point, st.floats(-1.0, 1.0), st.floats(-180.0, 180.0))
    return st.builds(
        lambda bearing, fraction: destination(anchor, bearing, spread_m * fraction),
        st.floats(0.0, 360.0),
        st.floats(0.0, 1.0),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A small member set in one region plus a few queries from the same region."""
    resolution = draw(st.integers(0, 15))
    region = draw(st.sampled_from(REGIONS))
    anchor = draw(anchors(region, resolution))
    spread_m = 10.0 ** draw(st.floats(1.0, 6.5))
    positions = draw(st.lists(points_around(anchor, spread_m), max_size=60))
    # Repeat some positions under new keys to create exact ties in distance.
    if positions:
        repeats = draw(st.lists(st.integers(0, len(positions) - 1), max_size=5))
        positions += [positions[i] for i in repeats]
    queries = draw(
        st.lists(
            st.builds(
                Query,
                points_around(anchor, 2.0 * spread_m),
                st.integers(1, 15),
                radii,
                st.booleans(),
            ),
            min_size=1,
            max_size=4,
        )
    )
    points = {f"w{i}": position for i, position in enumerate(positions)}
    return Scenario(resolution, region, points, queries)


def build_index(resolution: int, points: dict[str, Point]) -> CellIndex[str]:
    index: CellIndex[str] = CellIndex(resolution)
    for key, position in points.items():
        index.upsert(key, *position)
    return index


@SCATTERED
@given(scenarios())
def test_nearest_matches_brute_force(scenario: Scenario) -> None:
    """nearest returns exactly the brute-force top k by (distance, key), filtered or not."""
    index = build_index(scenario.resolution, scenario.points)
    for query in scenario.queries:
        predicate = even_key if query.filtered else None
        found = index.nearest(*query.point, query.k, query.radius_m, predicate)
        expected = brute_force(scenario.points, query.point, query.k, query.radius_m, predicate)
        assert [(n.distance_m, n.key) for n in found] == expected
        assert all((n.lat, n.lng) == scenario.points[n.key] for n in found)


@SCATTERED
@given(scenarios())
def test_within_matches_brute_force(scenario: Scenario) -> None:
    """within returns exactly every member inside the radius, sorted by (distance, key)."""
    index = build_index(scenario.resolution, scenario.points)
    for query in scenario.queries:
        predicate = even_key if query.filtered else None
        found = index.within(*query.point, query.radius_m, predicate)
        expected = brute_force(scenario.points, query.point, None, query.radius_m, predicate)
        assert [(n.distance_m, n.key) for n in found] == expected


def dense_population(resolution: int, anchor: Point, seed: int) -> dict[str, Point]:
    """1,500 members spread uniformly over a disc about 20 cell edges wide, most cells taken."""
    rng = random.Random(seed)
    spread_m = min(20.0 * average_edge_length_m(resolution), HALF_CIRCUMFERENCE_M)
    return {
        f"w{i}": destination(anchor, rng.uniform(0.0, 360.0), spread_m * math.sqrt(rng.random()))
        for i in range(1_500)
    }


@DENSE
@given(
    resolution=st.integers(0, 15),
    region=st.sampled_from(REGIONS),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_deep_ring_walks_match_brute_force(
    resolution: int, region: str, seed: int, data: st.DataObject
) -> None:
    """With most cells populated the walk runs many rings and still matches brute force."""
    anchor = data.draw(anchors(region, resolution)) or data.draw(points_around(None, 0.0))
    points = dense_population(resolution, anchor, seed)
    index = build_index(resolution, points)
    spread_m = 25.0 * average_edge_length_m(resolution)
    for _ in range(3):
        query = data.draw(points_around(anchor, spread_m))
        k = data.draw(st.integers(1, 15))
        radius_m = data.draw(radii)
        predicate = even_key if data.draw(st.booleans()) else None
        found = index.nearest(*query, k, radius_m, predicate)
        assert [(n.distance_m, n.key) for n in found] == brute_force(
            points, query, k, radius_m, predicate
        )
        found = index.within(*query, radius_m / 100.0, predicate)
        assert [(n.distance_m, n.key) for n in found] == brute_force(
            points, query, None, radius_m / 100.0, predicate
        )
