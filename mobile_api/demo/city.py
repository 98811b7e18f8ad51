"""The demo's world: a real city's extent, its depots and hot spots, and
random technicians and work orders drawn from it.

Pure data and random draws (seeded by the caller's ``random.Random``); no I/O.
``LYON`` is the city ``fieldcloud demo`` uses.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METRES_PER_DEGREE = 111_320.0
"""Length of one degree of latitude (and of longitude at the equator)."""


# -- the city -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """A WGS84 position."""

    lat: float
    lng: float

    def distance_m(self, other: Point) -> float:
        """Equirectangular distance: exact enough across one city."""
        dy = (other.lat - self.lat) * METRES_PER_DEGREE
        dx = (other.lng - self.lng) * METRES_PER_DEGREE * math.cos(math.radians(self.lat))
        return math.hypot(dx, dy)

    def moved(self, metres: float, bearing_rad: float) -> Point:
        """The point ``metres`` away along ``bearing_rad`` (0 = north, clockwise)."""
        dlat = metres * math.cos(bearing_rad) / METRES_PER_DEGREE
        dlng = (
            metres * math.sin(bearing_rad) / (METRES_PER_DEGREE * math.cos(math.radians(self.lat)))
        )
        return Point(self.lat + dlat, self.lng + dlng)

    def toward(self, other: Point, fraction: float) -> Point:
        """The point ``fraction`` (0…1) of the way to ``other``."""
        f = min(max(fraction, 0.0), 1.0)
        return Point(self.lat + (other.lat - self.lat) * f, self.lng + (other.lng - self.lng) * f)


@dataclass(frozen=True, slots=True)
class Place:
    """A named spot: a depot, or a hot spot with a weight and a spread."""

    name: str
    at: Point
    weight: float = 1.0
    spread_m: float = 500.0


@dataclass(frozen=True, slots=True)
class City:
    """The extent of the simulation: a bounding box, depots and hot spots."""

    name: str
    south: float
    west: float
    north: float
    east: float
    depots: tuple[Place, ...]
    hot_spots: tuple[Place, ...]

    @property
    def centre(self) -> Point:
        return Point((self.south + self.north) / 2, (self.west + self.east) / 2)

    def contains(self, p: Point) -> bool:
        return self.south <= p.lat <= self.north and self.west <= p.lng <= self.east

    def clamp(self, p: Point) -> Point:
        """``p`` pulled back inside the box."""
        return Point(min(max(p.lat, self.south), self.north), min(max(p.lng, self.west), self.east))

    def uniform(self, rng: random.Random) -> Point:
        """A point anywhere in the box."""
        return Point(rng.uniform(self.south, self.north), rng.uniform(self.west, self.east))

    def near(self, place: Place, rng: random.Random, spread_m: float | None = None) -> Point:
        """A point scattered around ``place`` (Gaussian, clamped to the box)."""
        spread = place.spread_m if spread_m is None else spread_m
        p = place.at.moved(abs(rng.gauss(0.0, spread)), rng.uniform(0.0, 2 * math.pi))
        return self.clamp(p)


LYON = City(
    name="Lyon",
    south=45.705,
    west=4.770,
    north=45.810,
    east=4.925,
    depots=(
        Place("Depot Gerland", Point(45.7265, 4.8305)),
        Place("Depot Vaise", Point(45.7795, 4.8045)),
        Place("Depot Villeurbanne", Point(45.7665, 4.8890)),
        Place("Depot Mermoz", Point(45.7365, 4.8800)),
    ),
    hot_spots=(
        Place("Part-Dieu", Point(45.7607, 4.8596), 3.0, 700.0),
        Place("Presqu'ile", Point(45.7640, 4.8357), 3.0, 600.0),
        Place("Vieux Lyon", Point(45.7622, 4.8271), 1.5, 400.0),
        Place("Confluence", Point(45.7432, 4.8175), 2.0, 600.0),
        Place("Croix-Rousse", Point(45.7748, 4.8317), 1.5, 500.0),
        Place("Gerland", Point(45.7290, 4.8330), 1.5, 800.0),
        Place("Gratte-Ciel", Point(45.7684, 4.8799), 2.0, 700.0),
        Place("Vaise", Point(45.7745, 4.8050), 1.0, 600.0),
        Place("Monplaisir", Point(45.7453, 4.8707), 1.0, 600.0),
    ),
)
"""Lyon and Villeurbanne: municipal depots and the busiest districts."""


# -- trades and work orders -----------------------------------------------------

SKILL_WEIGHTS: Mapping[str, float] = {
    "electrical": 0.20,
    "plumbing": 0.18,
    "hvac": 0.14,
    "roads": 0.16,
    "lighting": 0.20,
    "signage": 0.12,
}
"""How common each trade is, among technicians and among work orders alike."""

TITLES: Mapping[tuple[str, ...], tuple[str, ...]] = {
    ("electrical",): ("Power cut at kiosk", "EV charger fault", "Tripped breaker at school"),
    ("plumbing",): ("Water main leak", "Blocked drain", "Fountain pump failure"),
    ("hvac",): ("Boiler failure at gym", "Library air conditioning down", "Ventilation alarm"),
    ("roads",): ("Pothole", "Damaged kerb", "Fallen tree on cycle lane"),
    ("lighting",): ("Street light out", "Flickering lamp post", "Tunnel lighting fault"),
    ("signage",): ("Knocked-down sign", "Missing street name plate"),
    ("electrical", "roads"): ("Traffic signal fault",),
    ("electrical", "lighting"): ("Bridge illumination failure",),
}
"""Work-order titles by the skills they require."""

KIND_WEIGHTS: Mapping[str, float] = {"employee": 0.5, "contractor": 0.3, "freelancer": 0.2}

FIRST_NAMES = (
    "Camille", "Lucas", "Manon", "Hugo", "Chloe", "Louis", "Ines", "Nathan", "Lea", "Karim",
    "Sarah", "Mathis", "Yasmine", "Theo", "Julie", "Antoine", "Amina", "Paul", "Clara", "Malik",
)  # fmt: skip
LAST_INITIALS = "ABCDEFGHJKLMNOPRSTVW"


def weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    """One key of ``weights``, drawn in proportion to its weight."""
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def random_work_order(city: City, rng: random.Random) -> dict[str, Any]:
    """A ``POST /v1/jobs`` body: mostly near a hot spot, sometimes anywhere."""
    if rng.random() < 0.1:
        skills = rng.choice([k for k in TITLES if len(k) > 1])
    else:
        skills = (weighted(rng, SKILL_WEIGHTS),)
    if rng.random() < 0.8:
        spot = rng.choices(city.hot_spots, weights=[h.weight for h in city.hot_spots])[0]
        where, district = city.near(spot, rng), spot.name
    else:
        where, district = city.uniform(rng), city.name
    return {
        "title": rng.choice(TITLES[skills]),
        "lat": round(where.lat, 6),
        "lng": round(where.lng, 6),
        "skills": list(skills),
        "priority": 5 if rng.random() < 0.1 else 0,
        "description": f"Reported near {district}",
    }


@dataclass(frozen=True, slots=True)
class Profile:
    """Who a technician is: name, engagement, trades and where they start."""

    name: str
    kind: str
    skills: tuple[str, ...]
    home: Point


def random_profile(city: City, rng: random.Random) -> Profile:
    """Employees start at a depot; contractors and freelancers anywhere in town."""
    kind = weighted(rng, KIND_WEIGHTS)
    skills = {weighted(rng, SKILL_WEIGHTS) for _ in range(rng.randint(1, 3))}
    if kind == "employee":
        home = city.near(rng.choice(city.depots), rng, spread_m=300.0)
    else:
        home = city.uniform(rng)
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_INITIALS)}."
    return Profile(name, kind, tuple(sorted(skills)), home)


# -- knobs and counters -----------------------------------------------------------
