"""Where the test suite finds PostgreSQL and Redis.

By default the servers of the development and CI machines: PostgreSQL as
user ``postgres`` on 127.0.0.1:5432 (trust auth, allowed to ``CREATE
DATABASE``) and Redis on 127.0.0.1:6379, database 0. To point the suite
elsewhere, set

* ``FIELDCLOUD_TEST_DATABASE_URL``: a DSN of any database on a server where
  its user may create and drop databases (the suite creates
  ``fieldcloud_test_*`` databases next to it and drops them);
* ``FIELDCLOUD_TEST_REDIS_URL``: a Redis URL (database included); the suite
  writes only under ``fieldcloud_test_*`` key prefixes and deletes them.

These two are the suite's own variables, read here once; the application
reads its environment only through ``mobile_api.settings``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

PG_ADMIN_DSN = os.environ.get(
    "FIELDCLOUD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FIELDCLOUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def with_database(database: str) -> str:
    """The DSN of ``database`` on the test PostgreSQL server."""
    return urlunsplit(urlsplit(PG_ADMIN_DSN)._replace(path=f"/{database}"))


def pg_where() -> str:
    """The test PostgreSQL server, for messages (no password)."""
    parts = urlsplit(PG_ADMIN_DSN)
    return f"{parts.username or ''}@{parts.hostname}:{parts.port or 5432}"
