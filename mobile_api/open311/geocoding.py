"""Addresses to coordinates, through one of geopy's geocoders (``FIELDCLOUD_GEOCODER``).

``Geocoder.from_settings`` builds the geocoder the settings name, or returns
None when none is configured (then an address without coordinates is a 400).
geopy's synchronous geocoders run in a worker thread, so a slow geocoder
holds no event loop. Rules for callers: ``locate`` returns None for an
address the geocoder does not know and raises ``GeocodeError`` when the
geocoder cannot be asked (down, refusing, timing out); neither message
carries the geocoder's key.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from geopy.exc import GeopyError
from geopy.geocoders import get_geocoder_for_service

from ..settings import Settings

TIMEOUT_S = 5.0
"""How long one geocoder call may take."""


class GeocodeError(Exception):
    """The geocoder could not be asked."""


class Geocoder:
    """One configured geopy geocoder."""

    def __init__(self, name: str, geocoder: Any) -> None:
        self.name = name
        self._geocoder = geocoder

    @classmethod
    def from_settings(cls, settings: Settings) -> Geocoder | None:
        """The geocoder of ``FIELDCLOUD_GEOCODER`` and its options, or None."""
        if settings.geocoder is None:
            return None
        factory = get_geocoder_for_service(settings.geocoder)
        options: dict[str, Any] = {
            "user_agent": settings.geocoder_user_agent,
            "scheme": settings.geocoder_scheme,
            "timeout": TIMEOUT_S,
            "domain": settings.geocoder_domain,
            "api_key": settings.geocoder_api_key,
        }
        accepted = inspect.signature(factory.__init__).parameters
        kwargs = {k: v for k, v in options.items() if v is not None and k in accepted}
        return cls(settings.geocoder, factory(**kwargs))

    async def locate(self, address: str) -> tuple[float, float] | None:
        """``(lat, long)`` of ``address``, or None if the geocoder finds nothing."""
        try:
            found = await asyncio.to_thread(self._geocoder.geocode, address, exactly_one=True)
        except GeopyError as exc:
            raise GeocodeError(f"the geocoder ({self.name}) failed: {type(exc).__name__}") from None
        if found is None:
            return None
        return float(found.latitude), float(found.longitude)
