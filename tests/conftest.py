"""Fixtures shared by more than one test folder, and where the ``services`` mark comes from.

A test is marked ``services`` (it needs PostgreSQL or Redis) in one of two ways:

* it uses a fixture named in ``SERVICE_FIXTURES``, or the production
  parameter of the store contract suite's ``backend`` fixture: marked here, at
  collection, so a new test that takes such a fixture cannot miss the mark;
* its module reaches the services by itself (starts server processes, opens
  connections of its own): the module says ``pytestmark = pytest.mark.services``.

``pytest -m "not services"`` then runs with neither server installed. The
``slow`` mark (more than a few seconds on the CI machine) is set by hand, on
the test or its module.

Every test says in its docstring what must hold; collection stops with the
names of those that do not (ruff's docstring rules are off in tests/, where
helpers need none).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from dispatch.stores.redis import presence as redis_presence
from dispatch.stores.redis.keys import Keys
from dispatch.stores.redis.presence import RedisPresence
from tests.services import REDIS_URL

SERVICE_FIXTURES = frozenset({"services", "presence", "fresh_database", "own_redis"})
"""Fixtures that reach PostgreSQL or Redis (or start a redis-server of their own)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a service fixture, or the production backend, ``services``;
    refuse a test without a docstring."""
    undocumented = sorted(
        {
            item.nodeid.partition("[")[0]
            for item in items
            if isinstance(item, pytest.Function) and not (item.function.__doc__ or "").strip()
        }
    )
    if undocumented:
        raise pytest.UsageError(
            "tests need a docstring saying what must hold: " + ", ".join(undocumented)
        )
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        production = callspec is not None and callspec.params.get("backend") == "production"
        if production or fixtures & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)


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
