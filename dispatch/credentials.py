"""Secrets handed to organisations (API keys) and devices (worker tokens).

Secrets are random (256 bits), shown once, and stored only as their SHA-256
digest: a fast hash is enough for high-entropy secrets and lets a lookup be an
index probe. Callers must never log or persist a secret itself.

Every secret starts with a prefix naming its kind (``fck_…`` for an
organisation's key, ``fcw_…`` for a device token), so that whoever checks a
secret knows which one store to ask (``kind_of``). A new kind of secret takes a
prefix of its own here.
"""

from __future__ import annotations

import hashlib
import secrets

ORG_KEY = "fck"
"""Prefix of an organisation's integration (API) key."""

DEVICE_TOKEN = "fcw"  # noqa: S105 -- a prefix that names a kind of secret, not a secret
"""Prefix of a worker device's token."""

DISPATCHER_TOKEN = "fcd"  # noqa: S105 -- a prefix that names a kind of secret, not a secret
"""Prefix of a dispatcher's token (the control room's own role)."""


def new_secret(prefix: str) -> str:
    """A fresh secret such as ``fck_…``; the prefix tells what it is for."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def kind_of(secret: str) -> str:
    """The prefix of ``secret`` (the text before its first ``_``; ``""`` if it has none)."""
    prefix, sep, _ = secret.partition("_")
    return prefix if sep else ""


def digest(secret: str) -> str:
    """The stored form of ``secret`` (hex SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
