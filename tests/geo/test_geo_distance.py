"""Haversine (ranking) and WGS84 geodesic (reporting) distances."""

from __future__ import annotations

import math
import random

import pytest

from geo import EARTH_RADIUS_M, InvalidCoordinates, geodesic_m, haversine_m

PARIS = (48.8566, 2.3522)
LONDON = (51.5074, -0.1278)

# The sphere of mean radius differs from the WGS84 ellipsoid by at most ~0.56 %
# (short north-south hops at the equator, where the meridional radius of
# curvature is a * (1 - e**2) = 6_335_439 m); uniformly random pairs reach ~0.55 %.
SPHERE_VS_ELLIPSOID = 0.006


def _uniform_point(rng: random.Random) -> tuple[float, float]:
    return math.degrees(math.asin(rng.uniform(-1.0, 1.0))), rng.uniform(-180.0, 180.0)


def test_paris_to_london() -> None:
    """Paris to London is 343.5 km within 1 km by both figures."""
    assert haversine_m(*PARIS, *LONDON) == pytest.approx(343_500.0, abs=1_000.0)
    assert geodesic_m(*PARIS, *LONDON) == pytest.approx(343_500.0, abs=1_000.0)


def test_haversine_is_within_model_error_of_geodesic() -> None:
    """For random points the haversine figure is within 0.6 % of the geodesic one."""
    rng = random.Random(20240601)
    for _ in range(300):
        a = _uniform_point(rng)
        b = _uniform_point(rng)
        exact = geodesic_m(*a, *b)
        assert abs(haversine_m(*a, *b) - exact) <= SPHERE_VS_ELLIPSOID * exact + 1e-6


def test_haversine_is_within_half_a_percent_for_east_west_and_long_hops() -> None:
    """Away from short north-south hops at low latitudes the two figures agree within 0.5 %."""
    for a, b in [(PARIS, LONDON), ((0.0, 0.0), (0.0, 90.0)), ((40.7, -74.0), (35.7, 139.7))]:
        exact = geodesic_m(*a, *b)
        assert abs(haversine_m(*a, *b) - exact) <= 0.005 * exact


def test_haversine_basic_properties() -> None:
    """Haversine is zero for equal points, symmetric, and pi*R for antipodes."""
    assert haversine_m(*PARIS, *PARIS) == 0.0
    assert haversine_m(*PARIS, *LONDON) == haversine_m(*LONDON, *PARIS)
    assert haversine_m(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    assert haversine_m(90.0, 0.0, -90.0, 0.0) == pytest.approx(math.pi * EARTH_RADIUS_M)


def test_haversine_across_the_antimeridian_is_short() -> None:
    """Two points either side of longitude 180 are a few metres apart, not half the globe."""
    assert haversine_m(0.0, 179.9999, 0.0, -179.9999) == pytest.approx(22.24, abs=0.01)
    assert haversine_m(0.0, 180.0, 0.0, -180.0) == pytest.approx(0.0, abs=1e-6)


def test_haversine_at_the_pole_ignores_longitude() -> None:
    """At a pole every longitude names the same point."""
    assert haversine_m(90.0, 0.0, 90.0, 123.0) == pytest.approx(0.0, abs=1e-6)


def test_geodesic_validates_its_input() -> None:
    """geodesic_m refuses out-of-range or non-finite coordinates with InvalidCoordinates."""
    with pytest.raises(InvalidCoordinates):
        geodesic_m(91.0, 0.0, 0.0, 0.0)
    with pytest.raises(InvalidCoordinates):
        geodesic_m(0.0, 0.0, 0.0, math.nan)
