"""DispatchConfig refuses policies that cannot work and answers per-wave questions."""

from __future__ import annotations

import dataclasses

import pytest

from dispatch.config import DispatchConfig


def test_defaults_are_valid() -> None:
    """The default configuration builds and has four increasing radii."""
    config = DispatchConfig()
    assert config.max_waves == 4
    assert list(config.radii_m) == sorted(config.radii_m)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"radii_m": ()}, "at least one positive radius"),
        ({"radii_m": (0.0, 1_000.0)}, "at least one positive radius"),
        ({"radii_m": (-5.0,)}, "at least one positive radius"),
        ({"radii_m": (1_000.0, 1_000.0)}, "must increase"),
        ({"radii_m": (5_000.0, 2_000.0)}, "must increase"),
        ({"radii_m": (1_000.0, 3_000.0, 2_000.0)}, "must increase"),
        ({"wave_size": 0}, "wave_size"),
        ({"wave_size": -3}, "wave_size"),
        ({"offer_timeout_s": 0.0}, "offer_timeout_s"),
        ({"offer_timeout_s": -1.0}, "offer_timeout_s"),
        ({"fix_max_age_s": 0.0}, "fix_max_age_s"),
        ({"resolution": -1}, "resolution"),
        ({"resolution": 16}, "resolution"),
    ],
    ids=[
        "empty-radii",
        "zero-radius",
        "negative-radius",
        "equal-radii",
        "decreasing-radii",
        "dip-in-radii",
        "zero-wave-size",
        "negative-wave-size",
        "zero-timeout",
        "negative-timeout",
        "zero-fix-age",
        "resolution-too-low",
        "resolution-too-high",
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, object], message: str) -> None:
    """A config breaking a rule raises ValueError saying which rule."""
    with pytest.raises(ValueError, match=message):
        DispatchConfig(**kwargs)  # type: ignore[arg-type]


def test_single_radius_and_wave_size_one_are_valid() -> None:
    """One wave of one worker is the smallest valid policy."""
    config = DispatchConfig(wave_size=1, radii_m=(500.0,))
    assert config.max_waves == 1
    assert config.max_radius_m == 500.0


def test_radius_for_is_one_based() -> None:
    """radius_for(n) is the radius of wave n, counting from 1."""
    config = DispatchConfig(radii_m=(1_000.0, 3_000.0, 9_000.0))
    assert [config.radius_for(n) for n in (1, 2, 3)] == [1_000.0, 3_000.0, 9_000.0]
    assert config.max_radius_m == 9_000.0


@pytest.mark.parametrize("wave", [0, 4, -1])
def test_radius_for_outside_waves_raises(wave: int) -> None:
    """Asking for a wave that does not exist raises ValueError."""
    config = DispatchConfig(radii_m=(1_000.0, 3_000.0, 9_000.0))
    with pytest.raises(ValueError, match="outside"):
        config.radius_for(wave)


def test_config_is_immutable() -> None:
    """A built config cannot be changed."""
    config = DispatchConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.wave_size = 10  # type: ignore[misc]
