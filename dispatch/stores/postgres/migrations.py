"""Apply the PostgreSQL schema: plain SQL files, in order, each exactly once.

The migrations are the files ``dispatch/stores/postgres/sql/NNNN_name.sql``
(shipped as package data), applied in name order. ``migrate(dsn)`` is safe to
run from several instances at once and as often as you like:

* it holds a session-level ``pg_advisory_lock`` for the whole run, so two
  instances starting together apply each file once (the second waits, then
  finds nothing to do);
* each file runs in its own transaction together with its row in
  ``schema_migrations`` (name, SHA-256 of the file, time applied): a failing
  file leaves no trace and the next run retries it;
* a file that was applied and has changed since is refused with
  ``MigrationError`` (never edit an applied migration; add a new one).

Rules for callers: run ``migrate`` (``fieldcloud migrate``) before starting
servers on a new release; ``open_production_stores`` refuses to start on a
database with pending migrations unless asked to apply them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

__all__ = ["MIGRATION_LOCK_ID", "Migration", "MigrationError", "migrate", "migrations", "pending"]

MIGRATION_LOCK_ID = 0x6669_656C_6463_6C64  # "fieldcld": the advisory lock key
"""``pg_advisory_lock`` key held while migrations run."""

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A migration cannot be applied, or an applied one was changed."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: its name (without ``.sql``), text and checksum."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file text, recorded when it is applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """Every shipped migration, in the order it must be applied."""
    folder = resources.files("dispatch.stores.postgres").joinpath("sql")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        if not _NAME.match(entry.name):
            raise MigrationError(f"badly named migration file {entry.name!r} (want NNNN_name.sql)")
        found.append(Migration(entry.name.removesuffix(".sql"), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.name)
    return found


async def _applied(conn: asyncpg.Connection) -> dict[str, str]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
    return {r["name"]: r["checksum"] for r in rows}


def _check(applied: dict[str, str], shipped: list[Migration]) -> list[Migration]:
    """The shipped migrations not yet applied; raises if an applied one changed."""
    todo: list[Migration] = []
    for migration in shipped:
        checksum = applied.get(migration.name)
        if checksum is None:
            todo.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied; "
                "add a new migration instead"
            )
    return todo


async def pending(conn: asyncpg.Connection) -> list[str]:
    """Names of the shipped migrations the database behind ``conn`` lacks."""
    return [m.name for m in _check(await _applied(conn), migrations())]


async def migrate(dsn: str) -> list[str]:
    """Apply every pending migration to the database at ``dsn``; return their names.

    Idempotent and safe to call concurrently (see the module docstring).
    Connection errors propagate as asyncpg/OS errors; a failing file raises
    its PostgreSQL error after rolling back that file alone.
    """
    shipped = migrations()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await conn.execute(_CREATE_TABLE)
            done: list[str] = []
            for migration in _check(await _applied(conn), shipped):
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                        migration.name,
                        migration.checksum,
                    )
                done.append(migration.name)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()
