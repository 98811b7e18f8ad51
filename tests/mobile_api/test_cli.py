"""The ``fieldcloud`` command: help that leads somewhere, and ``migrate`` on DATABASE_URL alone."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys

import asyncpg
import pytest

from mobile_api.cli import parser
from mobile_api.demo.phone import SHORTHANDS
from tests.dispatch.backends import create_database, drop_database, pg_dsn
from tests.mobile_api.live import WAIT_S


def subcommands() -> dict[str, argparse.ArgumentParser]:
    found = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(found.choices)


def test_every_option_of_every_subcommand_has_help_text() -> None:
    """``--help`` of each subcommand explains each of its options."""
    missing = [
        f"{name} {action.option_strings}"
        for name, sub in subcommands().items()
        for action in sub._actions
        if action.option_strings and not action.help
    ]
    assert missing == []


def test_phone_help_lists_every_shorthand() -> None:
    """``fieldcloud phone --help`` shows the shorthand table the client understands."""
    text = subcommands()["phone"].format_help()
    for usage, meaning in SHORTHANDS:
        assert usage in text
        assert meaning in text


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``fieldcloud ARGS`` in a subprocess with exactly ``env`` (plus PATH)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mobile_api.cli",
        *args,
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT_S * 3):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.services
async def test_migrate_needs_only_database_url() -> None:
    """With DATABASE_URL alone, ``migrate`` applies the schema; a second run has nothing to do."""
    name = f"fieldcloud_test_{secrets.token_hex(4)}"
    await create_database(name)
    try:
        env = {"DATABASE_URL": pg_dsn(name)}
        code, out, err = await run_cli("migrate", env=env)
        assert (code, err) == (0, "")
        assert out.startswith("applied ")
        assert "none needed" not in out
        conn = await asyncpg.connect(pg_dsn(name))
        try:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
        finally:
            await conn.close()
        again = await run_cli("migrate", env=env)
        assert again == (0, "applied 0 migration(s): none needed\n", "")
    finally:
        await drop_database(name)


@pytest.mark.services
async def test_migrate_to_a_missing_database_says_so_in_one_line() -> None:
    """A database that does not exist is one line on stderr naming it, exit code 1."""
    name = f"fieldcloud_test_missing_{secrets.token_hex(4)}"
    code, out, err = await run_cli("migrate", env={"DATABASE_URL": pg_dsn(name)})
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith("fieldcloud: cannot migrate: ")
    assert f'database "{name}" does not exist' in err


async def test_migrate_to_an_unreachable_server_says_so_in_one_line() -> None:
    """A PostgreSQL that does not answer is one line naming its address (no password), exit 1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        dsn = f"postgresql://fc:hunter2@127.0.0.1:{port}/fc"
        code, out, err = await run_cli("migrate", env={"DATABASE_URL": dsn})
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert f"PostgreSQL at postgresql://fc:***@127.0.0.1:{port}/fc cannot be reached" in err
    assert "hunter2" not in err


async def test_serve_in_production_without_an_admin_token_warns_that_instances_disagree() -> None:
    """A production ``serve`` that generates its admin token says the other instances will not
    accept it (here before it fails to reach the dead services)."""
    with socket.socket() as pg, socket.socket() as redis:
        pg.bind(("127.0.0.1", 0))
        redis.bind(("127.0.0.1", 0))
        env = {
            "DATABASE_URL": f"postgresql://fc@127.0.0.1:{pg.getsockname()[1]}/fc",
            "REDIS_URL": f"redis://127.0.0.1:{redis.getsockname()[1]}/0",
        }
        code, out, err = await run_cli("serve", env=env)
    assert code == 1
    assert out.startswith("admin token (FIELDCLOUD_ADMIN_TOKEN unset): ")
    assert "other instances do not accept" in err
    assert "cannot start" in err
