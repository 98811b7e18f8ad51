"""The workers' last fixes in Redis: one hash per organisation, written in batches.

Reads are one pipeline of ``HMGET`` for any number of organisations; writes go
through the ``RedisWriter`` (the same batch and script as the index moves, so
a location report costs one round trip).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, cast

import redis.asyncio as aioredis

from ...models import Fix
from .client import redis_errors
from .keys import Keys

if TYPE_CHECKING:
    from .writer import RedisWriter

__all__ = ["RedisFixes", "decode_fix", "encode_fix"]

log = logging.getLogger(__name__)


def encode_fix(fix: Fix) -> str:
    """``"lat,lng,accuracy,at"`` with exact float round trips (empty accuracy: None)."""
    acc = "" if fix.accuracy_m is None else repr(float(fix.accuracy_m))
    return f"{float(fix.lat)!r},{float(fix.lng)!r},{acc},{float(fix.at)!r}"


def decode_fix(text: str) -> Fix:
    """The inverse of ``encode_fix``."""
    lat, lng, acc, at = text.split(",")
    return Fix(float(lat), float(lng), None if acc == "" else float(acc), float(at))


class RedisFixes:
    """The workers' last fixes (``keys.fixes``), written through the ``RedisWriter``.

    A worker's entry is replaced by its next fix and never expires by itself
    (one entry per worker; readers judge a fix's age by its timestamp); it is
    deleted when the worker goes off duty (``forget_fix``).
    """

    def __init__(self, client: aioredis.Redis, keys: Keys, writer: RedisWriter) -> None:
        self._redis = client
        self._keys = keys
        self._writer = writer

    def set_fix(self, org_id: str, worker_id: str, fix: Fix) -> Awaitable[None]:
        return self._writer.set_fix(org_id, worker_id, fix)

    def forget_fix(self, org_id: str, worker_id: str) -> Awaitable[None]:
        return self._writer.forget_fix(org_id, worker_id)

    async def get_fixes(self, wanted: Mapping[str, Sequence[str]]) -> Mapping[str, Fix]:
        """The last fixes of ``{org id: worker ids}``, one pipeline for all orgs."""
        asked = [(org_id, list(ids)) for org_id, ids in wanted.items() if ids]
        if not asked:
            return {}
        with redis_errors():
            pipe = self._redis.pipeline(transaction=False)
            for org_id, ids in asked:
                pipe.hmget(self._keys.fixes(org_id), ids)
            replies = await pipe.execute()
        found: dict[str, Fix] = {}
        for (_, ids), values in zip(asked, replies, strict=True):
            for worker_id, value in zip(ids, values, strict=True):
                if not value:
                    continue
                try:
                    found[worker_id] = decode_fix(value)
                except ValueError:
                    log.warning("ignoring a malformed fix for worker %s", worker_id)
        return found

    async def org_fixes(self, org_id: str) -> Mapping[str, Fix]:
        """Every last fix of the organisation's workers (one ``HGETALL``; the lists' scan)."""
        with redis_errors():
            values = cast(Mapping[str, str], await self._redis.hgetall(self._keys.fixes(org_id)))
        found: dict[str, Fix] = {}
        for worker_id, value in values.items():
            try:
                found[worker_id] = decode_fix(value)
            except ValueError:
                log.warning("ignoring a malformed fix for worker %s", worker_id)
        return found
