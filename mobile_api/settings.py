"""One settings object, loaded once from an injectable environment.

``Settings.from_environ(os.environ)`` is the only place the process
environment is read; tests pass their own mapping. Variables:

=============================  ==========================================  ========
variable                       meaning                                     default
=============================  ==========================================  ========
``HOST`` / ``PORT``            where ``serve`` listens                     127.0.0.1 / 8000
``DATABASE_URL``               PostgreSQL DSN (production mode)            unset
``REDIS_URL``                  Redis URL (production mode)                 unset
``FIELDCLOUD_ADMIN_TOKEN``     bootstrap admin token (creates orgs)        generated
``FIELDCLOUD_WAVE_SIZE``       workers per offer wave                      5
``FIELDCLOUD_OFFER_TIMEOUT_S`` seconds a wave waits for an accept          30
``FIELDCLOUD_RADII_M``         comma-separated radius of each wave         2000,5000,15000,40000
``FIELDCLOUD_FIX_MAX_AGE_S``   a position older than this is stale         300
``FIELDCLOUD_H3_RESOLUTION``   H3 resolution of the indexes                9
``FIELDCLOUD_MAX_FRAME_BYTES`` largest websocket frame accepted            16384
``FIELDCLOUD_LOG_SIZE``        notices kept per worker for replay          256
``FIELDCLOUD_KEY_PREFIX``      prefix of every Redis key                   fieldcloud
``FIELDCLOUD_TICK_S``          how often due deadlines are looked for      0.1
``FIELDCLOUD_PRESENCE_REFRESH_S`` how often a socket renews its claim       10
``FIELDCLOUD_DISCONNECT_FORGET_S`` a phone gone this long loses its fix     600
``FIELDCLOUD_LOG_LEVEL``       debug, info, warning or error               info (demo: warning)
``FIELDCLOUD_ACCESS_LOG``      one log line per HTTP request (1/0)         0
``FIELDCLOUD_TRAVEL_SPEED_KMH`` crews' straight-line speed (Open311 ETA)    30
``FIELDCLOUD_GEOCODER``        geopy geocoder for Open311 addresses        unset
``FIELDCLOUD_GEOCODER_DOMAIN`` the geocoder's host[:port]                  its own
``FIELDCLOUD_GEOCODER_SCHEME`` ``https`` or ``http``                       https
``FIELDCLOUD_GEOCODER_USER_AGENT`` User-Agent sent to the geocoder         fieldcloud
``FIELDCLOUD_GEOCODER_API_KEY`` the geocoder's API key, if it needs one     unset
=============================  ==========================================  ========

Either both ``DATABASE_URL`` and ``REDIS_URL`` are set (production) or
neither (in-process); one without the other is an error, except for
``fieldcloud migrate``, which needs only ``DATABASE_URL``. The same table,
with more words, is docs/configuration.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from dispatch.config import DispatchConfig

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A variable is present but unusable; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to start; immutable once loaded."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str | None = None
    redis_url: str | None = None
    admin_token: str | None = None
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)
    max_frame_bytes: int = 16_384
    log_size: int = 256
    key_prefix: str = "fieldcloud"
    tick_s: float = 0.1
    presence_refresh_s: float = 10.0
    disconnect_forget_s: float = 600.0
    """A phone gone this long (socket closed, not back) loses its last fix and index entry."""
    log_level: str | None = None
    """One of ``LOG_LEVELS``; None: the command's default (info, the demo warning)."""
    access_log: bool = False
    travel_speed_kmh: float = 30.0
    """How fast a crew is taken to travel, in a straight line, for ``expected_datetime``."""
    geocoder: str | None = None
    """A geopy geocoder name (``nominatim``, ``photon``, ``googlev3``…); None: no geocoding."""
    geocoder_domain: str | None = None
    geocoder_scheme: str = "https"
    geocoder_user_agent: str = "fieldcloud"
    geocoder_api_key: str | None = field(default=None, repr=False)

    @property
    def production(self) -> bool:
        """True when PostgreSQL and Redis back the service."""
        return self.database_url is not None

    def summary(self) -> str:
        """The settings in one line, for the start-up log: no secret, no password."""
        d = self.dispatch
        radii = "/".join(f"{r:g}" for r in d.radii_m)
        services = (
            f"database {redact_url(self.database_url)}, redis {redact_url(self.redis_url)},"
            f" key prefix {self.key_prefix!r}, "
            if self.database_url is not None and self.redis_url is not None
            else ""
        )
        return (
            f"{services}listen {self.host}:{self.port}, waves of {d.wave_size}"
            f" over {radii} m, offer timeout {d.offer_timeout_s:g} s,"
            f" fix max age {d.fix_max_age_s:g} s, H3 resolution {d.resolution},"
            f" frame cap {self.max_frame_bytes} B, {self.log_size} notices kept per worker,"
            f" tick {self.tick_s:g} s, presence refresh {self.presence_refresh_s:g} s,"
            f" access log {'on' if self.access_log else 'off'},"
            f" geocoder {self.geocoder or 'none'}"
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, database_only: bool = False) -> Settings:
        """Load from ``environ``; raises ``SettingsError`` naming a bad variable.

        ``database_only`` (``fieldcloud migrate``) accepts ``DATABASE_URL``
        without ``REDIS_URL``.
        """
        env = _Env(environ)
        database_url = env.get("DATABASE_URL", str, None)
        redis_url = env.get("REDIS_URL", str, None)
        if (database_url is None) != (redis_url is None) and not database_only:
            raise SettingsError("set both DATABASE_URL and REDIS_URL, or neither")
        defaults = DispatchConfig()
        try:
            dispatch = DispatchConfig(
                wave_size=env.get("FIELDCLOUD_WAVE_SIZE", int, defaults.wave_size),
                offer_timeout_s=env.get(
                    "FIELDCLOUD_OFFER_TIMEOUT_S", float, defaults.offer_timeout_s
                ),
                radii_m=env.get("FIELDCLOUD_RADII_M", _floats, defaults.radii_m),
                fix_max_age_s=env.get("FIELDCLOUD_FIX_MAX_AGE_S", float, defaults.fix_max_age_s),
                resolution=env.get("FIELDCLOUD_H3_RESOLUTION", int, defaults.resolution),
            )
        except ValueError as exc:
            raise SettingsError(f"dispatch settings: {exc}") from None
        settings = cls(
            host=env.get("HOST", str, "127.0.0.1"),
            port=env.get("PORT", int, 8000),
            database_url=database_url,
            redis_url=redis_url,
            admin_token=env.get("FIELDCLOUD_ADMIN_TOKEN", str, None),
            dispatch=dispatch,
            max_frame_bytes=env.get("FIELDCLOUD_MAX_FRAME_BYTES", int, 16_384),
            log_size=env.get("FIELDCLOUD_LOG_SIZE", int, 256),
            key_prefix=env.get("FIELDCLOUD_KEY_PREFIX", str, "fieldcloud"),
            tick_s=env.get("FIELDCLOUD_TICK_S", float, 0.1),
            presence_refresh_s=env.get("FIELDCLOUD_PRESENCE_REFRESH_S", float, 10.0),
            disconnect_forget_s=env.get("FIELDCLOUD_DISCONNECT_FORGET_S", float, 600.0),
            log_level=env.get(
                "FIELDCLOUD_LOG_LEVEL", _log_level, None, expect=", ".join(LOG_LEVELS)
            ),
            access_log=env.get("FIELDCLOUD_ACCESS_LOG", _flag, False, expect="1 or 0"),
            travel_speed_kmh=env.get("FIELDCLOUD_TRAVEL_SPEED_KMH", float, 30.0),
            geocoder=env.get("FIELDCLOUD_GEOCODER", _geocoder, None, expect="a geopy geocoder"),
            geocoder_domain=env.get("FIELDCLOUD_GEOCODER_DOMAIN", str, None),
            geocoder_scheme=env.get(
                "FIELDCLOUD_GEOCODER_SCHEME", _scheme, "https", expect="https or http"
            ),
            geocoder_user_agent=env.get("FIELDCLOUD_GEOCODER_USER_AGENT", str, "fieldcloud"),
            geocoder_api_key=env.get("FIELDCLOUD_GEOCODER_API_KEY", str, None),
        )
        if not 0 < settings.port < 65536:
            raise SettingsError("PORT must be between 1 and 65535")
        if settings.max_frame_bytes < 256:
            raise SettingsError("FIELDCLOUD_MAX_FRAME_BYTES must be at least 256")
        if settings.log_size < 1 or settings.tick_s <= 0 or settings.presence_refresh_s <= 0:
            raise SettingsError(
                "FIELDCLOUD_LOG_SIZE, FIELDCLOUD_TICK_S and FIELDCLOUD_PRESENCE_REFRESH_S"
                " must be positive"
            )
        if not settings.disconnect_forget_s > 0:
            raise SettingsError("FIELDCLOUD_DISCONNECT_FORGET_S must be positive")
        if not 0 < settings.travel_speed_kmh < 1000:
            raise SettingsError("FIELDCLOUD_TRAVEL_SPEED_KMH must be between 0 and 1000")
        return settings


def redact_url(url: str | None) -> str:
    """``url`` without its password (for logs and messages)."""
    if url is None:
        return "-"
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return urlunsplit(parts._replace(netloc=user + host))
    return "<unparseable URL>"


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError(text)
    return text.lower()


def _geocoder(text: str) -> str:
    from geopy.exc import GeocoderNotFound
    from geopy.geocoders import get_geocoder_for_service

    try:
        get_geocoder_for_service(text.lower())
    except GeocoderNotFound:
        raise ValueError(text) from None
    return text.lower()


def _scheme(text: str) -> str:
    if text.lower() not in ("https", "http"):
        raise ValueError(text)
    return text.lower()


def _flag(text: str) -> bool:
    value = {"1": True, "true": True, "yes": True, "on": True}.get(text.lower())
    if value is None and text.lower() not in ("0", "false", "no", "off"):
        raise ValueError(text)
    return bool(value)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, parse: Callable[[str], T], default: T, expect: str = "") -> T:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError:
            hint = f" (expected {expect})" if expect else ""
            raise SettingsError(f"{name}={raw!r} is not valid{hint}") from None
