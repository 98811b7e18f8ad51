"""Settings come from the environment, refuse bad values by name, and summarise without secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mobile_api.settings import Settings, SettingsError


def test_log_level_and_access_log_are_read_from_the_environment() -> None:
    """FIELDCLOUD_LOG_LEVEL and FIELDCLOUD_ACCESS_LOG are optional; unset means the defaults."""
    assert Settings.from_environ({}).log_level is None
    assert Settings.from_environ({}).access_log is False
    loaded = Settings.from_environ({"FIELDCLOUD_LOG_LEVEL": "DEBUG", "FIELDCLOUD_ACCESS_LOG": "on"})
    assert (loaded.log_level, loaded.access_log) == ("debug", True)
    assert Settings.from_environ({"FIELDCLOUD_ACCESS_LOG": "0"}).access_log is False


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("FIELDCLOUD_LOG_LEVEL", "loud", "debug, info, warning, error"),
        ("FIELDCLOUD_ACCESS_LOG", "maybe", "1 or 0"),
    ],
)
def test_a_bad_value_is_refused_with_what_is_expected(name: str, value: str, expected: str) -> None:
    """The error names the variable, its value and the values it takes."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_environ({name: value})
    assert str(caught.value) == f"{name}={value!r} is not valid (expected {expected})"


def test_one_service_url_alone_is_refused_except_for_migrations() -> None:
    """DATABASE_URL without REDIS_URL is an error for serving, and enough to migrate."""
    environ = {"DATABASE_URL": "postgresql://db/x"}
    with pytest.raises(SettingsError, match="both DATABASE_URL and REDIS_URL"):
        Settings.from_environ(environ)
    assert Settings.from_environ(environ, database_only=True).database_url == "postgresql://db/x"


def test_the_summary_names_the_services_without_passwords_or_the_admin_token() -> None:
    """The start-up summary shows where the services are, never a password or a token."""
    settings = Settings.from_environ(
        {
            "DATABASE_URL": "postgresql://fc:hunter2@db.internal:5432/fc",
            "REDIS_URL": "redis://:s3cret@cache.internal:6379/0",
            "FIELDCLOUD_ADMIN_TOKEN": "the-admin-token",
        }
    )
    summary = settings.summary()
    assert "postgresql://fc:***@db.internal:5432/fc" in summary
    assert "redis://:***@cache.internal:6379/0" in summary
    for secret in ("hunter2", "s3cret", "the-admin-token"):
        assert secret not in summary


def test_docs_configuration_lists_every_variable_the_settings_read() -> None:
    """Each environment variable ``Settings.from_environ`` reads has a row in
    docs/configuration.md."""
    root = Path(__file__).resolve().parents[2]
    source = (root / "mobile_api" / "settings.py").read_text()
    read = set(re.findall(r'env\.get\(\s*"([A-Z_]+)"', source))
    assert {"DATABASE_URL", "FIELDCLOUD_LOG_LEVEL", "FIELDCLOUD_ACCESS_LOG"} <= read
    doc = (root / "docs" / "configuration.md").read_text()
    assert sorted(name for name in read if f"| `{name}` |" not in doc) == []


def test_the_open311_settings_are_read_and_a_bad_geocoder_is_refused() -> None:
    """FIELDCLOUD_GEOCODER takes geopy's names; the travel speed must be positive."""
    loaded = Settings.from_environ(
        {
            "FIELDCLOUD_GEOCODER": "Nominatim",
            "FIELDCLOUD_GEOCODER_SCHEME": "http",
            "FIELDCLOUD_GEOCODER_API_KEY": "geo-secret",
            "FIELDCLOUD_TRAVEL_SPEED_KMH": "45",
        }
    )
    assert (loaded.geocoder, loaded.geocoder_scheme) == ("nominatim", "http")
    assert loaded.travel_speed_kmh == 45.0
    assert "geo-secret" not in loaded.summary() + repr(loaded)
    assert Settings.from_environ({}).geocoder is None
    with pytest.raises(SettingsError, match="FIELDCLOUD_GEOCODER='atlas'"):
        Settings.from_environ({"FIELDCLOUD_GEOCODER": "atlas"})
    with pytest.raises(SettingsError, match="FIELDCLOUD_GEOCODER_SCHEME"):
        Settings.from_environ({"FIELDCLOUD_GEOCODER_SCHEME": "ftp"})
    with pytest.raises(SettingsError, match="FIELDCLOUD_TRAVEL_SPEED_KMH"):
        Settings.from_environ({"FIELDCLOUD_TRAVEL_SPEED_KMH": "0"})
