"""Secrets handed to organisations (API keys) and devices (worker tokens).

Secrets are random (256 bits), shown once, and stored only as their SHA-256
digest: a fast hash is enough for high-entropy secrets and lets a lookup be an
index probe. Callers must never log or persist a secret itself.
"""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str) -> str:
    """A fresh secret such as ``fck_…``; the prefix tells what it is for."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def digest(secret: str) -> str:
    """The stored form of ``secret`` (hex SHA-256)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
