"""The typed h3 facade: validation, the error tree, cells, rings and radii."""

from __future__ import annotations

import math
from collections.abc import Callable

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo import (
    Cell,
    GeoError,
    InvalidArgument,
    InvalidCell,
    InvalidCoordinates,
    InvalidResolution,
    RingWalk,
    average_edge_length_m,
    cell_boundary,
    cell_resolution,
    cell_to_latlng,
    circumradius_m,
    grid_disk,
    grid_ring,
    haversine_m,
    is_pentagon,
    is_valid_cell,
    latlng_to_cell,
    parse_cell,
    pentagons,
    validate_latlng,
)
from geo.cells import center_and_circumradius_m, grid_neighbors

PARIS = (48.8566, 2.3522)

BAD_COORDINATES = [
    (91.0, 0.0),
    (-90.000001, 0.0),
    (0.0, 180.5),
    (0.0, -181.0),
    (math.nan, 0.0),
    (0.0, math.nan),
    (math.inf, 0.0),
    (0.0, -math.inf),
    (True, 0.0),
    (0.0, False),
]


@pytest.mark.parametrize(("lat", "lng"), BAD_COORDINATES)
def test_bad_coordinates_raise_invalid_coordinates(lat: float, lng: float) -> None:
    """Out-of-range, NaN, infinite and boolean coordinates are refused with InvalidCoordinates."""
    with pytest.raises(InvalidCoordinates):
        validate_latlng(lat, lng)
    with pytest.raises(InvalidCoordinates):
        latlng_to_cell(lat, lng, 9)


def test_latitude_91_is_a_geo_error_and_a_value_error() -> None:
    """InvalidCoordinates sits under GeoError, which is a ValueError."""
    with pytest.raises(InvalidCoordinates) as caught:
        latlng_to_cell(91.0, 0.0, 9)
    assert isinstance(caught.value, GeoError)
    assert isinstance(caught.value, ValueError)


def test_boundary_coordinates_are_accepted() -> None:
    """The closed ranges include the poles and both antimeridian longitudes."""
    for lat, lng in [(90.0, 0.0), (-90.0, 0.0), (0.0, 180.0), (0.0, -180.0), (0, 0)]:
        validate_latlng(lat, lng)
        assert is_valid_cell(latlng_to_cell(lat, lng, 5))


@pytest.mark.parametrize("res", [-1, 16, True, 9.0])
def test_bad_resolution_raises_invalid_resolution(res: int) -> None:
    """Resolutions outside 0..15 or not plain ints are refused with InvalidResolution."""
    with pytest.raises(InvalidResolution):
        latlng_to_cell(*PARIS, res)
    with pytest.raises(InvalidResolution):
        average_edge_length_m(res)
    with pytest.raises(InvalidResolution):
        pentagons(res)


@pytest.mark.parametrize("value", [0, 123, -1, 1 << 64, 1 << 70, True])
def test_bad_cell_raises_invalid_cell(value: int) -> None:
    """Integers that are not H3 cells are refused with InvalidCell by every cell function."""
    assert not is_valid_cell(value)
    cell = Cell(value)
    for function in (
        cell_to_latlng,
        cell_resolution,
        cell_boundary,
        circumradius_m,
        is_pentagon,
        parse_cell,
        RingWalk,
    ):
        with pytest.raises(InvalidCell):
            function(cell)
    with pytest.raises(InvalidCell):
        grid_disk(cell, 1)
    with pytest.raises(InvalidCell):
        grid_ring(cell, 1)


def test_non_integers_are_not_cells() -> None:
    """is_valid_cell is False for strings and floats, and parse_cell refuses them."""
    paris = latlng_to_cell(*PARIS, 9)
    for value in (hex(paris), float(paris), None):
        assert not is_valid_cell(value)
        with pytest.raises(InvalidCell):
            parse_cell(value)
    assert parse_cell(paris) == paris


def test_negative_grid_distance_raises_invalid_argument() -> None:
    """A negative grid distance is refused with InvalidArgument."""
    cell = latlng_to_cell(*PARIS, 9)
    with pytest.raises(InvalidArgument):
        grid_disk(cell, -1)
    with pytest.raises(InvalidArgument):
        grid_ring(cell, -1)


@settings(max_examples=200, deadline=None)
@given(
    z=st.floats(-1.0, 1.0),
    lng=st.floats(-180.0, 180.0),
    res=st.integers(0, 15),
)
def test_cell_center_lies_in_its_cell(z: float, lng: float, res: int) -> None:
    """A cell's center maps back to the cell, and any point lies within its cell's circumradius."""
    lat = math.degrees(math.asin(z))
    cell = latlng_to_cell(lat, lng, res)
    assert cell_resolution(cell) == res
    c_lat, c_lng = cell_to_latlng(cell)
    assert latlng_to_cell(c_lat, c_lng, res) == cell
    assert haversine_m(lat, lng, c_lat, c_lng) <= circumradius_m(cell)


def test_ring_around_a_hexagon_has_6k_cells() -> None:
    """Far from pentagons, ring k holds exactly 6k distinct cells at grid distance k."""
    origin = latlng_to_cell(*PARIS, 9)
    assert grid_ring(origin, 0) == [origin]
    for k in range(1, 8):
        ring = grid_ring(origin, k)
        assert len(ring) == 6 * k
        assert len(set(ring)) == 6 * k
        assert set(ring) == set(grid_disk(origin, k)) - set(grid_disk(origin, k - 1))


@pytest.mark.parametrize("res", range(16))
def test_ring_around_a_pentagon_has_5k_cells(res: int) -> None:
    """Around a pentagon, ring k holds 5k cells, without an exception, at every resolution."""
    for pentagon in pentagons(res)[:3]:
        assert is_pentagon(pentagon)
        assert len(grid_disk(pentagon, 1)) == 6
        for k in range(1, 4):
            ring = grid_ring(pentagon, k)
            assert len(ring) == len(set(ring)) == 5 * k


def test_pentagon_boundaries_have_five_or_ten_vertices() -> None:
    """Pentagons have 5 vertices, or 10 at Class III resolutions where edges cross faces."""
    for res in range(16):
        counts = {len(cell_boundary(p)) for p in pentagons(res)}
        assert counts == ({10} if res % 2 else {5})


def test_rings_stay_exact_when_they_wrap_the_globe() -> None:
    """At resolution 1, rings from one origin partition all 842 cells and agree with RingWalk."""
    origin = latlng_to_cell(0.0, 0.0, 1)
    walk = RingWalk(origin)
    seen: list[Cell] = []
    k = 0
    while ring := grid_ring(origin, k):
        assert sorted(walk.next_ring()) == sorted(ring)
        assert walk.radius == k
        seen.extend(ring)
        k += 1
    assert walk.next_ring() == []
    assert len(seen) == len(set(seen)) == 842
    assert walk.seen_count == 842


def test_ring_walk_matches_grid_ring_around_a_pentagon() -> None:
    """RingWalk produces the same rings as grid_ring next to a pentagon."""
    origin = grid_disk(pentagons(4)[5], 1)[3]
    walk = RingWalk(origin)
    for k in range(10):
        assert sorted(walk.next_ring()) == sorted(grid_ring(origin, k))


def test_circumradius_bounds_the_boundary_and_is_cached() -> None:
    """The circumradius is the farthest boundary vertex and repeated calls agree."""
    cell = latlng_to_cell(*PARIS, 7)
    c_lat, c_lng = cell_to_latlng(cell)
    radius = circumradius_m(cell)
    distances = [haversine_m(c_lat, c_lng, lat, lng) for lat, lng in cell_boundary(cell)]
    assert radius == max(distances)
    assert circumradius_m(cell) == radius
    assert average_edge_length_m(7) * 0.8 < radius < average_edge_length_m(7) * 1.3


def test_average_edge_length_shrinks_with_resolution() -> None:
    """Resolution 9 edges are about 200 m and each resolution is about sqrt(7) finer."""
    assert 150.0 < average_edge_length_m(9) < 250.0
    for res in range(15):
        ratio = average_edge_length_m(res) / average_edge_length_m(res + 1)
        assert 2.5 < ratio < 2.8


class _Degrees(float):
    """A float subclass: not the fast path of latlng_to_cell, same answer."""


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-90.0, 90.0),
    lng=st.floats(-180.0, 180.0),
    res=st.integers(0, 15),
)
def test_latlng_to_cell_fast_path_agrees_with_the_checked_path(
    lat: float, lng: float, res: int
) -> None:
    """Plain floats (fast path) and float subclasses (full checks) map to the same cell."""
    assert latlng_to_cell(lat, lng, res) == latlng_to_cell(_Degrees(lat), _Degrees(lng), res)


def test_latlng_to_cell_accepts_ints_and_refuses_bad_resolutions() -> None:
    """Integer degrees take the checked path; resolutions are checked on both paths."""
    assert latlng_to_cell(48, 2, 7) == latlng_to_cell(48.0, 2.0, 7)
    for res in (-1, 16, True, 9.0):
        with pytest.raises(InvalidResolution):
            latlng_to_cell(48.0, 2.0, res)  # type: ignore[arg-type]


@pytest.mark.parametrize("res", range(16))
def test_grid_neighbors_are_the_disk_without_its_center(res: int) -> None:
    """grid_neighbors(c) is grid_disk(c, 1) minus c: 5 cells around pentagons, 6 elsewhere."""
    cells = [*pentagons(res), latlng_to_cell(*PARIS, res), latlng_to_cell(89.99, 45.0, res)]
    cells += [latlng_to_cell(-33.9, 180.0, res), latlng_to_cell(0.0, -179.99, res)]
    cells += [c for p in pentagons(res)[:2] for c in grid_disk(p, 1)]
    for cell in cells:
        neighbors = grid_neighbors(cell)
        assert len(neighbors) == len(set(neighbors)) == (5 if is_pentagon(cell) else 6)
        assert set(neighbors) == set(grid_disk(cell, 1)) - {cell}
        assert grid_neighbors(cell) == neighbors


def test_grid_neighbors_refuses_invalid_cells_every_time() -> None:
    """An invalid cell raises InvalidCell on each call (errors are not cached)."""
    for _ in range(2):
        with pytest.raises(InvalidCell):
            grid_neighbors(Cell(0))
        with pytest.raises(InvalidCell):
            grid_neighbors(Cell(latlng_to_cell(*PARIS, 9) + 1))


@pytest.mark.parametrize("res", [0, 1, 5, 9, 15])
def test_center_and_circumradius_agree_with_the_separate_functions(res: int) -> None:
    """center_and_circumradius_m is cell_to_latlng plus circumradius_m, pentagons included."""
    for cell in [latlng_to_cell(*PARIS, res), pentagons(res)[0]]:
        lat, lng, radius = center_and_circumradius_m(cell)
        assert (lat, lng) == cell_to_latlng(cell)
        assert radius == circumradius_m(cell)
    with pytest.raises(InvalidCell):
        center_and_circumradius_m(Cell(0))


H3_FAILURES: list[tuple[Exception, type[GeoError]]] = [
    (h3.H3LatLngDomainError("lat"), InvalidCoordinates),
    (h3.H3ResDomainError("res"), InvalidResolution),
    (h3.H3CellInvalidError("cell"), InvalidCell),
    (h3.H3IndexInvalidError("index"), InvalidCell),
    (h3.H3BaseCellDomainError("base cell"), InvalidCell),
    (OverflowError("too big for a uint64"), InvalidCell),
    (TypeError("not an int"), InvalidCell),
    (h3.H3DomainError("domain"), InvalidArgument),
    (h3.H3PentagonError("pentagon in the way"), GeoError),
    (h3.H3MemoryAllocError("out of memory"), GeoError),
]


@pytest.mark.parametrize(("error", "expected"), H3_FAILURES, ids=lambda v: type(v).__name__)
def test_each_kind_of_h3_failure_surfaces_as_its_geo_error(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: type[GeoError]
) -> None:
    """Whatever h3 raises leaves the facade as the matching class of the geo error tree,
    with h3's exception as its cause."""

    def failing(*args: object) -> object:
        raise error

    monkeypatch.setattr("geo.cells._h3.cell_to_latlng", failing)
    with pytest.raises(GeoError) as raised:
        cell_to_latlng(latlng_to_cell(*PARIS, 9))
    assert type(raised.value) is expected
    assert raised.value.__cause__ is error
    assert str(raised.value)


WRAPPED: list[tuple[str, str, Callable[[Cell], object]]] = [
    ("latlng_to_cell", "geo.cells._h3_latlng_to_cell", lambda c: latlng_to_cell(*PARIS, 9)),
    ("cell_to_latlng", "geo.cells._h3.cell_to_latlng", cell_to_latlng),
    ("cell_resolution", "geo.cells._h3.get_resolution", cell_resolution),
    ("is_pentagon", "geo.cells._h3.is_pentagon", is_pentagon),
    ("pentagons", "geo.cells._h3.get_pentagons", lambda c: pentagons(9)),
    ("grid_disk", "geo.cells._h3.grid_disk", lambda c: grid_disk(c, 2)),
    ("grid_neighbors", "geo.cells._h3_memview.grid_disk", grid_neighbors),
    ("grid_ring", "geo.cells._h3.grid_disk", lambda c: grid_ring(c, 2)),
    ("cell_boundary", "geo.cells._h3.cell_to_boundary", cell_boundary),
    ("center_and_circumradius_m", "geo.cells._h3.cell_to_boundary", center_and_circumradius_m),
    (
        "average_edge_length_m",
        "geo.cells._h3.average_hexagon_edge_length",
        lambda c: average_edge_length_m(9),
    ),
]


@pytest.mark.parametrize(("name", "target", "call"), WRAPPED, ids=[w[0] for w in WRAPPED])
def test_every_call_into_h3_is_wrapped(
    monkeypatch: pytest.MonkeyPatch, name: str, target: str, call: Callable[[Cell], object]
) -> None:
    """No h3 exception escapes a public function of the facade: each turns into a GeoError."""
    cell = latlng_to_cell(*PARIS, 9)
    grid_neighbors.cache_clear()
    error = h3.H3CellInvalidError(name)

    def failing(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(target, failing)
    with pytest.raises(InvalidCell) as raised:
        call(cell)
    assert raised.value.__cause__ is error
