"""Pure geometry for fieldcloud: H3 cells, grid rings, distances, the cell index.

The only package that imports h3. No asyncio, no I/O. Modules, one concept each:

* :mod:`geo.errors` -- the error tree (``GeoError`` is a ``ValueError``).
* :mod:`geo.coords` -- what a valid ``(lat, lng)`` is.
* :mod:`geo.distance` -- haversine (ranking) and WGS84 geodesic (reporting).
* :mod:`geo.cells` -- the typed facade over h3's integer API.
* :mod:`geo.rings` -- exact grid rings, walked outwards one at a time.
* :mod:`geo.members` -- one cell's members: keys and positions in parallel arrays.
* :mod:`geo.search` -- the exact nearest/radius query over bucketed members.
* :mod:`geo.index` -- :class:`CellIndex`, members by key and by cell.

Rules for callers: import from ``geo`` (the names below) rather than from the
submodules; catch :class:`GeoError` (or ``ValueError``) for bad input.
"""

from geo.cells import (
    MAX_RESOLUTION,
    MIN_RESOLUTION,
    Cell,
    average_edge_length_m,
    cell_boundary,
    cell_resolution,
    cell_to_latlng,
    circumradius_m,
    grid_disk,
    grid_ring,
    is_pentagon,
    is_valid_cell,
    latlng_to_cell,
    parse_cell,
    pentagons,
    validate_latlng,
    validate_resolution,
)
from geo.distance import EARTH_RADIUS_M, geodesic_m, haversine_m
from geo.errors import (
    GeoError,
    InvalidArgument,
    InvalidCell,
    InvalidCoordinates,
    InvalidResolution,
)
from geo.index import DEFAULT_RESOLUTION, CellIndex
from geo.rings import RingWalk
from geo.search import Neighbor

__all__ = [
    "DEFAULT_RESOLUTION",
    "EARTH_RADIUS_M",
    "MAX_RESOLUTION",
    "MIN_RESOLUTION",
    "Cell",
    "CellIndex",
    "GeoError",
    "InvalidArgument",
    "InvalidCell",
    "InvalidCoordinates",
    "InvalidResolution",
    "Neighbor",
    "RingWalk",
    "average_edge_length_m",
    "cell_boundary",
    "cell_resolution",
    "cell_to_latlng",
    "circumradius_m",
    "geodesic_m",
    "grid_disk",
    "grid_ring",
    "haversine_m",
    "is_pentagon",
    "is_valid_cell",
    "latlng_to_cell",
    "parse_cell",
    "pentagons",
    "validate_latlng",
    "validate_resolution",
]
