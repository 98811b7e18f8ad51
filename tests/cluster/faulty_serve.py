"""``python -m tests.cluster.faulty_serve``: ``fieldcloud serve`` with a crash armed.

The process kills itself with ``SIGKILL`` right after the first job
transaction that committed a notice of type ``$FAULT_KILL_AFTER`` (for
example ``job_cancelled``), before any of that transaction's effects are
delivered: the window the outbox closes. Settings come from the environment
as for ``fieldcloud serve`` (no pre-flight check).

How this stays out of production: the fault point is the ``after_commit``
argument of ``mobile_api.app.create_app``, which the ``fieldcloud`` command
never passes; only this module, which lives under ``tests/`` and is not part
of the installed package, does. No setting or environment variable of the
server turns it on.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from dispatch.effects import Effect, EffectKind
from mobile_api.app import create_app
from mobile_api.server import build_server
from mobile_api.settings import Settings


def main() -> None:
    """Serve until the armed notice type is committed, then die without delivering it."""
    kind = os.environ["FAULT_KILL_AFTER"]

    async def die_after(effects: Sequence[Effect]) -> None:
        if any(e.kind is EffectKind.NOTICE and e.payload.get("type") == kind for e in effects):
            os.kill(os.getpid(), signal.SIGKILL)

    settings = Settings.from_environ(os.environ)
    build_server(create_app(settings, after_commit=die_after), settings).run()


if __name__ == "__main__":
    main()
