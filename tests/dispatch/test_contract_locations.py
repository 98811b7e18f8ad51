"""Store contract, location index: exact nearest queries, moves, removals, tenants."""

from __future__ import annotations

import asyncio
import random

import pytest

from dispatch.stores.memory import MemoryLocationIndex
from dispatch.stores.ports import LocationIndex, Nearby
from geo import GeoError, haversine_m
from tests.dispatch.backends import (
    RESOLUTION,
    Backend,
)

ORG = "org_loc"
BERLIN = (52.52, 13.405)


def brute_force(
    points: dict[str, tuple[float, float]],
    lat: float,
    lng: float,
    k: int,
    radius: float,
) -> list[Nearby]:
    """The k nearest points within ``radius`` (ties by key), by scanning them all."""
    rows = sorted((haversine_m(lat, lng, p[0], p[1]), key, p) for key, p in points.items())
    return [Nearby(key, d, p[0], p[1]) for d, key, p in rows if d <= radius][:k]


async def fill(
    indexes: list[LocationIndex], rng: random.Random, n: int, spread_deg: float
) -> dict[str, tuple[float, float]]:
    """Put ``n`` random workers around Berlin into every index (the same points)."""
    points = {
        f"w{i:04d}": (
            BERLIN[0] + rng.uniform(-spread_deg, spread_deg),
            BERLIN[1] + rng.uniform(-spread_deg, spread_deg) * 1.6,
        )
        for i in range(n)
    }
    for index in indexes:
        await asyncio.gather(*(index.upsert(ORG, k, p[0], p[1]) for k, p in points.items()))
    return points


@pytest.mark.parametrize(
    ("n", "spread_deg"),
    [(400, 0.15), (25, 0.3), (3, 0.4), (900, 0.02)],
    ids=["city", "sparse", "three", "dense"],
)
async def test_nearest_gives_the_memory_index_answers(
    backend: Backend, n: int, spread_deg: float
) -> None:
    """On the same random points ``nearest`` answers exactly as the memory index and a full scan."""
    rng = random.Random(n)
    reference = MemoryLocationIndex(RESOLUTION)
    index = backend.stores.locations
    points = await fill([index, reference], rng, n, spread_deg)
    for _ in range(25):
        lat = BERLIN[0] + rng.uniform(-spread_deg, spread_deg)
        lng = BERLIN[1] + rng.uniform(-spread_deg, spread_deg) * 1.6
        k = rng.choice([1, 3, 5, 12, 40])
        radius = rng.choice([50.0, 800.0, 4_000.0, 25_000.0, 80_000.0])
        expected = brute_force(points, lat, lng, k, radius)
        assert await index.nearest(ORG, lat, lng, k, radius) == expected
        assert await reference.nearest(ORG, lat, lng, k, radius) == expected


async def test_nearest_is_exact_at_the_poles_the_antimeridian_and_world_wide(
    backend: Backend,
) -> None:
    """Near the poles (cells past a geo set's latitudes), across 180° and at any radius."""
    rng = random.Random(7)
    reference = MemoryLocationIndex(RESOLUTION)
    index = backend.stores.locations
    spots = [(89.99, 0.0), (-89.7, 120.0), (86.0, -179.9), (-85.2, 179.95), (0.0, 179.999)]
    points: dict[str, tuple[float, float]] = {}
    for i in range(300):
        lat, lng = spots[i % len(spots)]
        lat = max(-90.0, min(90.0, lat + rng.uniform(-0.05, 0.05)))
        lng = (lng + rng.uniform(-0.5, 0.5) + 180.0) % 360.0 - 180.0
        points[f"p{i:03d}"] = (lat, lng)
    for i in range(100):
        points[f"g{i:03d}"] = (rng.uniform(-89.0, 89.0), rng.uniform(-180.0, 180.0))
    for target in (index, reference):
        for key, (lat, lng) in points.items():
            await target.upsert(ORG, key, lat, lng)
    queries = [*spots, (90.0, 0.0), (-90.0, 0.0), (0.0, -180.0), (45.0, 90.0)]
    for lat, lng in queries:
        for k, radius in ((1, 5_000.0), (7, 60_000.0), (25, 3e6), (500, float("inf"))):
            expected = brute_force(points, lat, lng, k, radius)
            assert await index.nearest(ORG, lat, lng, k, radius) == expected, (lat, lng, k)
            assert await reference.nearest(ORG, lat, lng, k, radius) == expected


async def test_upsert_moves_a_worker(backend: Backend) -> None:
    """A worker upserted again is found only at its new position."""
    index = backend.stores.locations
    await index.upsert(ORG, "mover", 52.52, 13.405)
    await index.upsert(ORG, "mover", 52.40, 13.10)
    assert await index.nearest(ORG, 52.52, 13.405, 5, 1_000.0) == []
    (hit,) = await index.nearest(ORG, 52.40, 13.10, 5, 1_000.0)
    assert (hit.key, hit.distance_m, hit.lat, hit.lng) == ("mover", 0.0, 52.40, 13.10)
    await index.upsert(ORG, "mover", 52.400001, 13.100001)  # same cell, new position
    (hit,) = await index.nearest(ORG, 52.40, 13.10, 5, 1_000.0)
    assert (hit.lat, hit.lng) == (52.400001, 13.100001)


async def test_remove_forgets_a_worker(backend: Backend) -> None:
    """A removed worker is no longer found; removing an unknown one is harmless."""
    index = backend.stores.locations
    await index.upsert(ORG, "a", 52.52, 13.405)
    await index.upsert(ORG, "b", 52.521, 13.405)
    await index.remove(ORG, "a")
    await index.remove(ORG, "nobody")
    await index.remove("org_other", "b")
    assert [h.key for h in await index.nearest(ORG, 52.52, 13.405, 5, 5_000.0)] == ["b"]


async def test_index_is_per_organisation(backend: Backend) -> None:
    """Workers of one organisation are never found in another's queries."""
    index = backend.stores.locations
    await index.upsert("org_a", "wa", 52.52, 13.405)
    await index.upsert("org_b", "wb", 52.52, 13.405)
    assert [h.key for h in await index.nearest("org_a", 52.52, 13.405, 5, 100.0)] == ["wa"]
    assert await index.nearest("org_c", 52.52, 13.405, 5, 100.0) == []


async def test_many_concurrent_upserts_all_land(backend: Backend) -> None:
    """A burst of concurrent upserts and moves (batched writes) ends in the last positions."""
    rng = random.Random(3)
    index = backend.stores.locations
    first = await fill([index], rng, 500, 0.05)
    last = await fill([index], rng, 500, 0.05)
    assert first != last
    hits = await index.nearest(ORG, BERLIN[0], BERLIN[1], 1_000, 50_000.0)
    assert {h.key: (h.lat, h.lng) for h in hits} == last


async def test_bad_positions_are_refused(backend: Backend) -> None:
    """An invalid position raises a ``GeoError`` and stores nothing."""
    index = backend.stores.locations
    await index.upsert(ORG, "ok", 52.0, 13.0)
    with pytest.raises(GeoError):
        await index.upsert(ORG, "bad", 91.0, 13.0)
    with pytest.raises(GeoError):
        await index.nearest(ORG, 52.0, 200.0, 1, 10.0)
    assert [h.key for h in await index.nearest(ORG, 52.0, 13.0, 5, 1e9)] == ["ok"]
