"""The ``fieldcloud`` command: ``serve``, ``demo``, ``phone``, ``migrate``.

Settings come from the environment (``Settings.from_environ``; the list is
docs/configuration.md); flags only override where to listen. Exit codes: 0
ok, 2 bad settings or usage, 1 a backing service could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import sys
from collections.abc import Sequence

from .settings import Settings, SettingsError, redact_url

SETTINGS_HINT = "settings: environment variables, listed in docs/configuration.md"


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_environ(os.environ)
    host: str | None = getattr(args, "host", None)
    port: int | None = getattr(args, "port", None)
    return dataclasses.replace(
        settings, host=host or settings.host, port=settings.port if port is None else port
    )


async def _preflight(settings: Settings) -> str | None:
    """Why the production backend cannot be opened, or None if it can."""
    from dispatch.errors import Unavailable
    from dispatch.stores.postgres.migrations import MigrationError
    from dispatch.stores.production import open_production_stores

    assert settings.database_url is not None
    assert settings.redis_url is not None
    try:
        backend = await open_production_stores(
            settings.database_url,
            settings.redis_url,
            settings.dispatch.resolution,
            settings.key_prefix,
            "preflight",
        )
    except Unavailable as exc:
        return exc.message
    except MigrationError as exc:
        return str(exc)
    await backend.close()
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .logs import configure_logging
    from .server import build_server, run

    settings = _settings(args)
    level = settings.log_level or "info"
    configure_logging(level)
    if settings.admin_token is None:
        # Shown once, on stdout, for the operator who has to use it; set
        # FIELDCLOUD_ADMIN_TOKEN to choose one instead.
        settings = dataclasses.replace(settings, admin_token=secrets.token_urlsafe(24))
        print(f"admin token (FIELDCLOUD_ADMIN_TOKEN unset): {settings.admin_token}", flush=True)
        if settings.production:
            print(
                "fieldcloud: FIELDCLOUD_ADMIN_TOKEN is unset: this instance made up its own"
                " admin token, which other instances do not accept; set it on every instance",
                file=sys.stderr,
                flush=True,
            )
    if settings.production:
        problem = asyncio.run(_preflight(settings))
        if problem is not None:
            print(f"fieldcloud: cannot start: {problem}", file=sys.stderr, flush=True)
            return 1
    # The first log line says the mode and the settings (app.lifespan).
    run(build_server(create_app(settings), settings, log_level=level))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo
    from .logs import configure_logging

    settings = _settings(args)
    # Warnings only unless asked: the live summary is the demo's output.
    configure_logging(settings.log_level or "warning")
    return asyncio.run(run_demo(settings, workers=args.workers, duration_s=args.duration))


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_environ(os.environ, database_only=True)
    if settings.database_url is None:
        # The Procfile's release phase runs this in every deployment; an
        # in-process deployment has no schema, which is not an error.
        print("DATABASE_URL is not set: nothing to migrate (in-process mode)")
        return 0
    try:
        applied = asyncio.run(_migrate(settings.database_url))
    except MigrateFailed as exc:
        print(f"fieldcloud: cannot migrate: {exc}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")
    return 0


class MigrateFailed(Exception):
    """The database could not be reached or migrated; the message says why, in one line."""


async def _migrate(dsn: str, connect_timeout_s: float = 10.0) -> list[str]:
    """``migrate(dsn)`` after checking, within a timeout, that the database answers."""
    import asyncpg

    from dispatch.stores.postgres.migrations import MigrationError, migrate

    where = redact_url(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
        await conn.close()
    except asyncpg.InvalidCatalogNameError as exc:
        raise MigrateFailed(f"PostgreSQL at {where}: {exc}; create it first") from None
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise MigrateFailed(f"DATABASE_URL is not a PostgreSQL URL: {_one_line(exc)}") from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise MigrateFailed(f"PostgreSQL at {where} cannot be reached: {_one_line(exc)}") from None
    try:
        return await migrate(dsn)
    except MigrationError as exc:
        raise MigrateFailed(str(exc)) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise MigrateFailed(f"PostgreSQL at {where}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def cmd_phone(args: argparse.Namespace) -> int:
    from .demo.phone import run_phone

    return asyncio.run(run_phone(args.url, args.token, args.last_seq))


def parser() -> argparse.ArgumentParser:
    from .demo.phone import shorthand_help

    p = argparse.ArgumentParser(
        prog="fieldcloud",
        description="real-time dispatch backend for field workers",
        epilog=SETTINGS_HINT,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the server (settings from the environment)",
        description="Run the server. In-process unless DATABASE_URL and REDIS_URL are set.",
        epilog=SETTINGS_HINT,
    )
    serve.add_argument("--host", help="listen address (default: HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT, else 8000)")
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser(
        "demo",
        help="the server plus a simulated fleet and work orders (what `make run` starts)",
        description="The server, in-process, with a simulated fleet and a feed of work orders.",
        epilog=SETTINGS_HINT,
    )
    demo.add_argument("--host", help="listen address (default: HOST, else 127.0.0.1)")
    demo.add_argument(
        "--port", type=int, help="listen port (default: PORT, else 8000; a free one if taken)"
    )
    demo.add_argument(
        "--workers", type=int, default=300, help="simulated technicians (default: 300)"
    )
    demo.add_argument(
        "--duration", type=float, default=None, help="stop after N seconds (default: Ctrl-C)"
    )
    demo.set_defaults(func=cmd_demo)
    phone = sub.add_parser(
        "phone",
        help="drive one technician by hand (see docs/protocol.md)",
        description="Connect as one technician: print what the server sends, send what you type.",
        epilog=shorthand_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    phone.add_argument(
        "--url",
        default="ws://127.0.0.1:8000/v1/ws/worker",
        help="the worker socket (default: %(default)s)",
    )
    phone.add_argument(
        "--token", required=True, help="the worker's device token (from POST /v1/workers)"
    )
    phone.add_argument(
        "--last-seq",
        type=int,
        default=None,
        help="resume: replay the notices after this seq (the last one you saw)",
    )
    phone.set_defaults(func=cmd_phone)
    migrate = sub.add_parser(
        "migrate",
        help="apply the SQL migrations to DATABASE_URL (needs nothing else)",
        description="Apply the SQL migrations to DATABASE_URL, each once (safe to repeat).",
    )
    migrate.set_defaults(func=cmd_migrate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as exc:
        print(f"fieldcloud: bad settings: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
