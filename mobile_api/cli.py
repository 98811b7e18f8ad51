"""The ``fieldcloud`` command: ``serve``, ``demo``, ``phone``, ``migrate``.

Settings come from the environment (``Settings.from_environ``); flags only
override where to listen. Exit codes: 0 ok, 2 bad settings or usage, 1 a
backing service could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import secrets
import sys
from collections.abc import Sequence

from .settings import Settings, SettingsError


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
    from dispatch.stores.migrate import MigrationError
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
    from .server import build_server

    settings = _settings(args)
    if settings.admin_token is None:
        settings = dataclasses.replace(settings, admin_token=secrets.token_urlsafe(24))
        print(f"admin token (FIELDCLOUD_ADMIN_TOKEN unset): {settings.admin_token}", flush=True)
    if settings.production:
        print("mode: production (PostgreSQL + Redis)", flush=True)
        problem = asyncio.run(_preflight(settings))
        if problem is not None:
            print(f"fieldcloud: cannot start: {problem}", file=sys.stderr, flush=True)
            return 1
    else:
        print(
            "mode: in-process (no DATABASE_URL/REDIS_URL): single instance, "
            "nothing persists across restarts",
            flush=True,
        )
    build_server(create_app(settings), settings).run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo.run import run_demo

    settings = _settings(args)
    return asyncio.run(run_demo(settings, workers=args.workers, duration_s=args.duration))


def cmd_migrate(args: argparse.Namespace) -> int:
    from dispatch.stores.migrate import migrate

    settings = _settings(args)
    if settings.database_url is None:
        # The Procfile's release phase runs this in every deployment; an
        # in-process deployment has no schema, which is not an error.
        print("DATABASE_URL is not set: nothing to migrate (in-process mode)")
        return 0
    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")
    return 0


def cmd_phone(args: argparse.Namespace) -> int:
    from .demo.phone import run_phone

    return asyncio.run(run_phone(args.url, args.token, args.last_seq))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fieldcloud", description="real-time dispatch backend")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (settings from the environment)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="the server plus a simulated fleet and work orders")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    demo.add_argument("--workers", type=int, default=300, help="simulated technicians")
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.set_defaults(func=cmd_demo)
    phone = sub.add_parser("phone", help="drive one technician by hand (see docs/protocol.md)")
    phone.add_argument("--url", default="ws://127.0.0.1:8000/v1/ws/worker")
    phone.add_argument("--token", required=True, help="the worker's device token")
    phone.add_argument("--last-seq", type=int, default=None, help="resume after this seq")
    phone.set_defaults(func=cmd_phone)
    migrate = sub.add_parser("migrate", help="apply the SQL migrations to DATABASE_URL")
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
