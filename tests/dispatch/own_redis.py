"""A redis-server of a test's own, on a spare loopback port, to stop and start at will.

Rules for callers: ``start()`` returns once the server answers; ``kill()``
(SIGKILL, the data goes with it) is safe to repeat and must run at the end
(the ``own_redis`` fixture of a conftest does it).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import redis.asyncio as aioredis

START_WITHIN_S = 10.0


class OwnRedis:
    """One private ``redis-server`` process (restartable, empty after each start)."""

    def __init__(self, log: Path) -> None:
        exe = shutil.which("redis-server")
        assert exe is not None, "redis-server is not installed"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start the server and wait until it answers ``PING``."""
        with self._log.open("ab") as out:
            args = [*self._args, "--appendonly", "no"]
            self._proc = await asyncio.to_thread(subprocess.Popen, args, stdout=out, stderr=out)
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            async with asyncio.timeout(START_WITHIN_S):
                while True:
                    try:
                        await client.ping()
                        return
                    except (OSError, aioredis.ConnectionError):
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """Stop the server at once (its data is lost)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
