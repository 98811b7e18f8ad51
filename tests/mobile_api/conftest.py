"""Fixtures for the edge tests: live servers on loopback ports (see ``live``).

``start_server(...)`` starts a server and returns its ``LiveServer``; ``server``
is one such server with the default test policy. Everything a test opens is
closed at teardown.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from dispatch.config import DispatchConfig
from dispatch.service import Clock
from tests.mobile_api.live import DEFAULT_POLICY, LiveServer, StartServer, running_server


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """A factory: ``await start_server(DispatchConfig(...), tick_s=..., clock=...)`` →
    ``LiveServer``."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            dispatch: DispatchConfig = DEFAULT_POLICY,
            *,
            tick_s: float = 0.05,
            max_frame_bytes: int = 16_384,
            clock: Clock = time.time,
        ) -> LiveServer:
            return await stack.enter_async_context(
                running_server(
                    dispatch, tick_s=tick_s, max_frame_bytes=max_frame_bytes, clock=clock
                )
            )

        yield start


@pytest.fixture
async def server(start_server: StartServer) -> LiveServer:
    """A server with the default test policy: waves of 5, deadlines that never pass."""
    return await start_server()
