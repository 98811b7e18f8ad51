"""Setting up a server for a scenario through its public HTTP API.

An organisation (with the admin token the bench gave the server) and its
technicians (``POST /v1/workers``, several keep-alive connections at once);
what comes back are the secrets the phones present.
"""

from __future__ import annotations

import asyncio

from .procs import ServerProcess
from .wire import Http


async def create_org(server: ServerProcess, name: str) -> str:
    """A new organisation on ``server``; returns its API key."""
    async with Http(server.port) as http:
        body = await http.expect(201, "POST", "/v1/orgs", {"name": name}, server.admin_token)
    key: str = body["api_key"]
    return key


async def create_workers(
    port: int, api_key: str, count: int, prefix: str = "tech", connections: int = 8
) -> list[str]:
    """``count`` new workers of the organisation; returns their device tokens, in order."""
    tokens: list[str] = [""] * count
    next_index = iter(range(count))

    async def one_connection() -> None:
        async with Http(port) as http:
            for i in next_index:
                body = await http.expect(
                    201, "POST", "/v1/workers", {"name": f"{prefix}-{i}"}, api_key
                )
                tokens[i] = body["token"]

    await asyncio.gather(*(one_connection() for _ in range(min(connections, max(count, 1)))))
    return tokens
