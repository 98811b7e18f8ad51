"""Fixtures shared by more than one test folder."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from dispatch.stores.redis import presence as redis_presence
from dispatch.stores.redis.keys import Keys
from dispatch.stores.redis.presence import RedisPresence
from tests.services import REDIS_URL


@pytest.fixture
async def presence(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RedisPresence]:
    """Presence in the shared Redis under a fresh prefix (removed afterwards).

    Claims go to Redis in batches of 2 (``redis_presence.BATCH``), so that a
    handful of workers already spans several script calls.
    """
    monkeypatch.setattr(redis_presence, "BATCH", 2)
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    keys = Keys(f"fieldcloud_test_{secrets.token_hex(4)}")
    try:
        await client.ping()
    except OSError as exc:
        pytest.fail(f"Redis does not answer at {REDIS_URL}: {exc!r}", pytrace=False)
    try:
        yield RedisPresence(client, keys)
    finally:
        found = [k async for k in client.scan_iter(match=keys.pattern(), count=1000)]
        if found:
            await client.delete(*found)
        await client.aclose()
