"""Dispatch policy knobs: wave size, deadlines, radii, staleness, resolution.

Callers build one ``DispatchConfig`` at start-up (``mobile_api.settings`` reads
it from the environment) and pass it down; it is immutable.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """How offers go out.

    * ``wave_size``: how many of the nearest eligible workers one wave reaches.
    * ``offer_timeout_s``: how long a wave waits for an accept.
    * ``radii_m``: the search radius of wave 1, 2, …; its length is the number
      of waves before a job is ``unfilled``. Must be non-empty and increasing.
    * ``fix_max_age_s``: a position older than this does not count.
    * ``resolution``: the H3 resolution of the location and job indexes.
    """

    wave_size: int = 5
    offer_timeout_s: float = 30.0
    radii_m: tuple[float, ...] = (2_000.0, 5_000.0, 15_000.0, 40_000.0)
    fix_max_age_s: float = 300.0
    resolution: int = 9

    def __post_init__(self) -> None:
        if self.wave_size < 1:
            raise ValueError("wave_size must be at least 1")
        if self.offer_timeout_s <= 0:
            raise ValueError("offer_timeout_s must be positive")
        if not self.radii_m or any(r <= 0 for r in self.radii_m):
            raise ValueError("radii_m must hold at least one positive radius")
        if any(b <= a for a, b in zip(self.radii_m, self.radii_m[1:], strict=False)):
            raise ValueError("radii_m must increase wave by wave")
        if self.fix_max_age_s <= 0:
            raise ValueError("fix_max_age_s must be positive")
        if not 0 <= self.resolution <= 15:
            raise ValueError("resolution must be between 0 and 15")

    @property
    def max_waves(self) -> int:
        """Number of waves before a job is declared unfilled."""
        return len(self.radii_m)

    @property
    def max_radius_m(self) -> float:
        """The widest radius any wave reaches."""
        return self.radii_m[-1]

    def radius_for(self, wave: int) -> float:
        """The search radius of ``wave`` (1-based)."""
        if not 1 <= wave <= self.max_waves:
            raise ValueError(f"wave {wave} outside 1..{self.max_waves}")
        return self.radii_m[wave - 1]
