"""The per-process presence loop (``PresenceKeeper``) against a real Redis.

The sockets are ``Session`` objects whose close records the code; the claims
live in Redis (the shared one, under a prefix of the test's own, or a
redis-server of the test's own that is stopped and started again). Periods are
short (0.1 s: claims live 0.3 s).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dispatch.stores.redis.keys import Keys
from dispatch.stores.redis.presence import RedisPresence
from mobile_api.errors import CLOSE_SUPERSEDED
from mobile_api.presence import PresenceKeeper
from mobile_api.runtime import Session

EVERY_S = 0.1
WAIT_S = 10.0


class Socket(Session):
    """An open phone socket as the keeper sees it; ``closed`` resolves with the close code."""

    def __init__(self, instance: str = "a") -> None:
        super().__init__(f"wrk_{secrets.token_hex(8)}", self._record)
        self.holder = f"{instance}/{secrets.token_hex(4)}"
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def _record(self, code: int, reason: str) -> None:
        self.open = False
        if not self.closed.done():
            self.closed.set_result(code)


async def eventually(check: Callable[[], Awaitable[object]], within_s: float = WAIT_S) -> None:
    """Poll ``check`` (the keeper's loop writes to Redis) until it returns something truthy."""
    async with asyncio.timeout(within_s):
        while True:  # polling Redis, bounded by the timeout
            if await check():
                return
            await asyncio.sleep(EVERY_S / 4)


@pytest.fixture
def sessions() -> dict[str, Session]:
    """The runtime's open sessions, by worker."""
    return {}


@pytest.fixture
async def keeper(
    presence: RedisPresence, sessions: dict[str, Session]
) -> AsyncIterator[PresenceKeeper]:
    keeper = PresenceKeeper(presence, sessions, EVERY_S)
    try:
        yield keeper
    finally:
        await keeper.aclose()


def connect(keeper: PresenceKeeper, sessions: dict[str, Session], instance: str = "a") -> Socket:
    """What a socket does once its welcome is sent: register, then hand its claim over."""
    sock = Socket(instance)
    sessions[sock.worker_id] = sock
    keeper.hold(sock)
    return sock


async def test_new_sockets_are_claimed_together_and_their_claims_kept_alive(
    keeper: PresenceKeeper, presence: RedisPresence, sessions: dict[str, Session]
) -> None:
    """Claims are made as sockets arrive and refreshed each period, well past their TTL."""
    socks = [connect(keeper, sessions) for _ in range(5)]

    async def all_claimed() -> bool:
        return all([await presence.holder(s.worker_id) == s.holder for s in socks])

    await eventually(all_claimed)
    assert all(s.claimed for s in socks)
    await asyncio.sleep(4 * keeper.ttl_s)
    assert await all_claimed()
    assert not any(s.closed.done() for s in socks)


async def test_a_claim_taken_by_a_newer_socket_closes_the_older_one_with_4001(
    keeper: PresenceKeeper, presence: RedisPresence, sessions: dict[str, Session]
) -> None:
    """At its next refresh the keeper finds another holder and closes the socket; the newer
    socket's claim is left as it is."""
    old, other = connect(keeper, sessions), connect(keeper, sessions)
    await eventually(lambda: presence.holder(old.worker_id))
    assert await presence.claim(old.worker_id, "b/newer", 30) == old.holder
    async with asyncio.timeout(WAIT_S):
        assert await old.closed == CLOSE_SUPERSEDED
    assert not old.claimed
    await asyncio.sleep(2 * EVERY_S)
    assert await presence.holder(old.worker_id) == "b/newer"
    assert not other.closed.done()


async def test_an_expired_claim_is_taken_back_and_the_socket_stays_open(
    keeper: PresenceKeeper, presence: RedisPresence, sessions: dict[str, Session]
) -> None:
    """A claim gone from Redis (expired, nobody took it) is retaken at the next refresh."""
    sock = connect(keeper, sessions)
    await eventually(lambda: presence.holder(sock.worker_id))
    key = presence._keys.presence(sock.worker_id)
    await presence._redis.pexpire(key, 1)
    await asyncio.sleep(0.01)
    assert await presence.holder(sock.worker_id) is None

    async def retaken() -> bool:
        return await presence.holder(sock.worker_id) == sock.holder

    await eventually(retaken)
    assert not sock.closed.done()


async def test_a_socket_that_closes_while_its_claim_is_in_flight_is_released(
    keeper: PresenceKeeper, presence: RedisPresence, sessions: dict[str, Session]
) -> None:
    """The batch may land after the socket's own release: the keeper releases it again."""
    sock = Socket()
    sessions[sock.worker_id] = sock
    keeper._new.append(sock)
    claiming = asyncio.create_task(keeper.claim())
    await asyncio.sleep(0)  # the batch is formed and sent
    sock.open = False  # closed now; it saw no claim yet, so it released nothing
    await claiming
    assert not sock.claimed
    assert await presence.holder(sock.worker_id) is None


class OwnRedis:
    """A redis-server of the test's own on a spare port, to stop and start again."""

    def __init__(self, log: Path) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None, "redis-server is not installed"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([*self.args, "--appendonly", "no"], stdout=out, stderr=out)

    def kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis.log")
    try:
        yield server
    finally:
        server.kill()


async def test_while_redis_is_away_no_socket_is_closed_and_claims_come_back(
    own_redis: OwnRedis,
) -> None:
    """Failed claims and refreshes close nothing; once Redis answers again (empty), every
    claim is made again, also that of a socket that connected during the outage."""
    own_redis.start()
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{own_redis.port}/0", decode_responses=True, socket_connect_timeout=1
    )
    presence = RedisPresence(client, Keys("fieldcloud_test"))
    sessions: dict[str, Session] = {}
    keeper = PresenceKeeper(presence, sessions, EVERY_S)
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                try:
                    await client.ping()
                    break
                except (OSError, aioredis.ConnectionError):
                    await asyncio.sleep(0.05)
        before = connect(keeper, sessions)
        await eventually(lambda: presence.holder(before.worker_id))

        own_redis.kill()
        during = connect(keeper, sessions)
        await asyncio.sleep(2 * keeper.ttl_s)  # several failed refreshes and claims
        assert not before.closed.done()
        assert not during.closed.done()

        own_redis.start()

        async def both_held() -> bool:
            try:
                return all(
                    [await presence.holder(s.worker_id) == s.holder for s in (before, during)]
                )
            except Exception:
                return False

        await eventually(both_held)
        assert not before.closed.done()
        assert not during.closed.done()
    finally:
        await keeper.aclose()
        await client.aclose()
