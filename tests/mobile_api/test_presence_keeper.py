"""The per-process presence loop (``PresenceKeeper``) against a real Redis.

The sockets are ``Session`` objects whose close records the code; the claims
live in Redis (the shared one, under a prefix of the test's own, or a
redis-server of the test's own that is stopped and started again). Periods are
short (0.1 s: claims live 0.3 s).

The keeper talks to Redis through ``Watched``, which notes how each batch
ended; the tests wait for the keeper's batches (``Watched.batches``) rather
than for time to pass: "the claim outlived its TTL" is twelve refreshes, "the
keeper left the newer claim alone" is two more refreshes after it was taken.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from dispatch.errors import DispatchError
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
        super().__init__(f"wrk_{secrets.token_hex(8)}")
        self.holder = f"{instance}/{secrets.token_hex(4)}"
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def close(self, code: int, reason: str) -> None:
        self.open = False
        if not self.closed.done():
            self.closed.set_result(code)


class Watched:
    """The keeper's ``Presence``: Redis's, noting how each of the keeper's batches ended.

    ``log`` holds one outcome per finished batch, in order: ``claimed`` or
    ``claim_failed`` (``claim_many``), ``refreshed`` or ``refresh_failed``
    (``refresh_many``). ``claim_sent`` is set when a claim batch is handed to Redis.
    """

    def __init__(self, inner: RedisPresence) -> None:
        self.inner = inner
        self.log: list[str] = []
        self.claim_sizes: list[int] = []
        self.claim_sent = asyncio.Event()
        self._changed = asyncio.Event()

    def _note(self, outcome: str) -> None:
        self.log.append(outcome)
        self._changed.set()

    async def batches(self, **want: int) -> None:
        """Wait until, from now on, the keeper has finished ``want[outcome]`` batches of each
        outcome named (fails after ``WAIT_S``)."""
        start = len(self.log)
        async with asyncio.timeout(WAIT_S):
            while not all(self.log[start:].count(k) >= n for k, n in want.items()):
                self._changed.clear()
                await self._changed.wait()

    async def claim_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[str | None]:
        self.claim_sizes.append(len(claims))
        self.claim_sent.set()
        try:
            found = await self.inner.claim_many(claims, ttl_s)
        except DispatchError:
            self._note("claim_failed")
            raise
        self._note("claimed")
        return found

    async def refresh_many(self, claims: Sequence[tuple[str, str]], ttl_s: float) -> list[bool]:
        try:
            found = await self.inner.refresh_many(claims, ttl_s)
        except DispatchError:
            self._note("refresh_failed")
            raise
        self._note("refreshed")
        return found

    async def claim(self, worker_id: str, instance_id: str, ttl_s: float) -> str | None:
        return await self.inner.claim(worker_id, instance_id, ttl_s)

    async def refresh(self, worker_id: str, instance_id: str, ttl_s: float) -> bool:
        return await self.inner.refresh(worker_id, instance_id, ttl_s)

    async def release(self, worker_id: str, instance_id: str) -> bool:
        return await self.inner.release(worker_id, instance_id)

    async def holder(self, worker_id: str) -> str | None:
        return await self.inner.holder(worker_id)


@pytest.fixture
def sessions() -> dict[str, Session]:
    """The runtime's open sessions, by worker."""
    return {}


@pytest.fixture
def watched(presence: RedisPresence) -> Watched:
    """The shared Redis's presence, as the keeper sees it."""
    return Watched(presence)


@pytest.fixture
async def keeper(watched: Watched, sessions: dict[str, Session]) -> AsyncIterator[PresenceKeeper]:
    keeper = PresenceKeeper(watched, sessions, EVERY_S)
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
    keeper: PresenceKeeper,
    watched: Watched,
    presence: RedisPresence,
    sessions: dict[str, Session],
) -> None:
    """Sockets that arrive together are claimed in one batch, and their claims are
    refreshed each period, well past their TTL."""
    socks = [connect(keeper, sessions) for _ in range(5)]

    async def all_claimed() -> bool:
        return all([await presence.holder(s.worker_id) == s.holder for s in socks])

    await watched.batches(claimed=1)
    assert watched.claim_sizes == [5]
    assert all(s.claimed for s in socks)
    assert await all_claimed()
    await watched.batches(refreshed=round(4 * keeper.ttl_s / EVERY_S))  # four TTLs
    assert await all_claimed()
    assert not any(s.closed.done() for s in socks)


async def test_a_claim_taken_by_a_newer_socket_closes_the_older_one_with_4001(
    keeper: PresenceKeeper,
    watched: Watched,
    presence: RedisPresence,
    sessions: dict[str, Session],
) -> None:
    """At its next refresh the keeper finds another holder and closes the socket; the newer
    socket's claim is left as it is."""
    old, other = connect(keeper, sessions), connect(keeper, sessions)
    await watched.batches(claimed=1)
    assert await presence.claim(old.worker_id, "b/newer", 30) == old.holder
    async with asyncio.timeout(WAIT_S):
        assert await old.closed == CLOSE_SUPERSEDED
    assert not old.claimed
    await watched.batches(refreshed=2)  # two more rounds in which it could have retaken it
    assert await presence.holder(old.worker_id) == "b/newer"
    assert not other.closed.done()


async def test_an_expired_claim_is_taken_back_and_the_socket_stays_open(
    keeper: PresenceKeeper,
    watched: Watched,
    presence: RedisPresence,
    sessions: dict[str, Session],
) -> None:
    """A claim gone from Redis (it expired, nobody took it) is retaken at the next refresh."""
    sock = connect(keeper, sessions)
    await watched.batches(claimed=1)
    await watched.batches(refreshed=1)  # the next refresh is a whole period away
    await presence._redis.delete(presence._keys.presence(sock.worker_id))  # as expiry leaves it
    assert await presence.holder(sock.worker_id) is None
    await watched.batches(refreshed=1)
    assert await presence.holder(sock.worker_id) == sock.holder
    assert not sock.closed.done()


async def test_a_socket_that_closes_while_its_claim_is_in_flight_is_released(
    keeper: PresenceKeeper,
    watched: Watched,
    presence: RedisPresence,
    sessions: dict[str, Session],
) -> None:
    """The batch may land after the socket's own release: the keeper releases it again."""
    sock = Socket()
    sessions[sock.worker_id] = sock
    keeper._new.append(sock)
    claiming = asyncio.create_task(keeper.claim())
    async with asyncio.timeout(WAIT_S):
        await watched.claim_sent.wait()  # the batch is formed and on its way
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
    watched = Watched(presence)
    sessions: dict[str, Session] = {}
    keeper = PresenceKeeper(watched, sessions, EVERY_S)
    try:
        async with asyncio.timeout(WAIT_S):
            while True:  # until the server process listens: it says so nowhere else
                try:
                    await client.ping()
                    break
                except (OSError, aioredis.ConnectionError):
                    await asyncio.sleep(0.05)
        before = connect(keeper, sessions)
        await watched.batches(claimed=1)

        own_redis.kill()
        during = connect(keeper, sessions)
        await watched.batches(refresh_failed=3, claim_failed=2)
        assert not before.closed.done()
        assert not during.closed.done()

        own_redis.start()
        await watched.batches(claimed=1)  # the socket that came during the outage
        await watched.batches(refreshed=1)  # both, the older one retaken in the empty Redis
        for sock in (before, during):
            assert await presence.holder(sock.worker_id) == sock.holder
        assert not before.closed.done()
        assert not during.closed.done()
    finally:
        await keeper.aclose()
        await client.aclose()
