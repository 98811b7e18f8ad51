"""The processes of a run: the server under test, the bare ceiling, load agents, py-spy.

* :class:`ServerProcess` starts ``fieldcloud serve`` (``python -m mobile_api.cli
  serve``) with its settings in environment variables, exactly as an operator
  would, or the bare ceiling server (:mod:`bench.bare`) under the
  same uvicorn configuration. The storage mode is in the environment the caller
  passes: nothing for ``memory``; ``DATABASE_URL``, ``REDIS_URL`` and
  ``FIELDCLOUD_KEY_PREFIX`` for ``production``
  (:meth:`bench.services.Services.env`). Start-up waits for
  ``/healthz`` and checks that the server reports the expected mode.
* :class:`Agent` is a load generator in its own process (``spawn`` start
  method, uvloop inside), driven by request/reply messages over a pipe.
* :class:`Profiler` records a process with ``py-spy`` while a phase runs.

Every process here that holds many sockets raises its open-file limit first
(:func:`raise_nofile`); children started from this one inherit the raised limit.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from .wire import Http

Message = dict[str, Any]
AgentMain = Callable[["Channel", Any], Awaitable[None]]

STARTUP_TIMEOUT_S = 30.0
_LINE = re.compile(r":\d+\)$")


def raise_nofile(wanted: int = 65_536) -> int:
    """Raise this process's open-file limit as far as allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    for limits in ((wanted, max(hard, wanted)), (min(wanted, hard), hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return limits[0]
        except (ValueError, OSError):
            continue
    return soft


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


_OWN_VARIABLES = ("DATABASE_URL", "REDIS_URL", "HOST", "PORT")


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


@dataclass
class ServerProcess:
    """A server in its own process, listening on ``127.0.0.1:port``."""

    kind: Literal["fieldcloud", "bare"]
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    admin_token: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(
        cls,
        kind: Literal["fieldcloud", "bare"],
        mode: str,
        workdir: Path,
        name: str,
        mode_env: Mapping[str, str] | None = None,
    ) -> ServerProcess:
        """Start the server; wait until ``GET /healthz`` answers 200 in ``mode``.

        ``mode_env`` holds the variables that select ``mode`` (none for memory).
        """
        port = free_port()
        token = secrets.token_urlsafe(24)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _OWN_VARIABLES and not k.startswith("FIELDCLOUD_")
        }
        env.update(HOST="127.0.0.1", PORT=str(port), FIELDCLOUD_ADMIN_TOKEN=token)
        if kind == "fieldcloud":
            env.update(mode_env or {})
            argv = [sys.executable, "-m", "mobile_api.cli", "serve"]
        else:
            argv = [sys.executable, "-m", "bench.bare", "--port", str(port)]
        log_path = workdir / f"{name}.log"
        proc = _spawn(argv, env, log_path)
        server = cls(kind, proc, port, log_path, token)
        try:
            await server._wait_healthy("bare" if kind == "bare" else mode)
        except BaseException:
            await server.stop()
            raise
        return server

    async def _wait_healthy(self, mode: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited at start-up:\n{self.log_tail()}")
            try:
                async with Http(self.port) as http:
                    status, body = await http.call("GET", "/healthz")
                if status == 200:
                    got = body.get("mode") if isinstance(body, dict) else None
                    if got != mode:
                        raise RuntimeError(f"{self.kind} server runs in mode {got!r}, not {mode!r}")
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.kind} server did not answer within {STARTUP_TIMEOUT_S} s")

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def stop(self) -> None:
        """Graceful stop (SIGINT, as Ctrl-C), then a kill if it takes too long."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 15.0)
            except TimeoutError:
                self.proc.kill()
        await asyncio.to_thread(self.proc.wait)


# -- load agents -----------------------------------------------------------------


class AgentError(RuntimeError):
    """An agent process failed; the message carries its traceback."""


class Channel:
    """One end of the request/reply pipe between the bench and an agent."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def send(self, message: Message) -> None:
        self._conn.send(message)

    async def recv(self) -> Message:
        message: Message = await asyncio.to_thread(self._conn.recv)
        return message

    def close(self) -> None:
        self._conn.close()


def _agent_entry(main: AgentMain, conn: Connection, config: Any) -> None:
    """The body of an agent process: a uvloop running ``main(channel, config)``."""
    raise_nofile()
    channel = Channel(conn)

    async def guarded() -> None:
        try:
            await main(channel, config)
        except Exception:
            channel.send({"error": traceback.format_exc()})

    if sys.platform != "win32":
        import uvloop

        uvloop.run(guarded())
    else:  # pragma: no cover
        asyncio.run(guarded())


class Agent:
    """A load generator in its own process; ``await agent.ask({...})`` gets its reply."""

    def __init__(self, main: AgentMain, config: Any, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.name = name
        self._channel = Channel(parent)
        self._process = ctx.Process(
            target=_agent_entry, args=(main, child, config), name=name, daemon=True
        )
        self._process.start()
        child.close()
        self._waiting = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def ask(self, message: Message) -> Message:
        """Send a command and wait for the agent's reply."""
        self._channel.send(message)
        self._waiting = True
        try:
            reply = await self._channel.recv()
        except (EOFError, ConnectionError):
            raise AgentError(
                f"agent {self.name} died (exit code {self._process.exitcode})"
            ) from None
        self._waiting = False
        if "error" in reply:
            raise AgentError(f"agent {self.name} failed:\n{reply['error']}")
        return reply

    async def close(self) -> None:
        """Ask the agent to stop, then make sure its process is gone.

        An agent whose reply never came (the run was cancelled or failed
        mid-command) is terminated: it may be busy for a while yet, and a
        thread may still be reading its pipe.
        """
        if self._waiting and self._process.is_alive():
            self._process.terminate()
        if self._process.is_alive():
            try:
                self._channel.send({"cmd": "stop"})
                await asyncio.wait_for(self._channel.recv(), 10.0)
            except (EOFError, OSError, TimeoutError, BrokenPipeError):
                pass
        await asyncio.to_thread(self._process.join, 10.0)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, 5.0)
        self._channel.close()


async def ask_all(agents: list[Agent], message: Message | list[Message]) -> list[Message]:
    """Send each agent a command (the same one, or one each) and gather the replies."""
    messages = message if isinstance(message, list) else [message] * len(agents)
    return list(await asyncio.gather(*(a.ask(m) for a, m in zip(agents, messages, strict=True))))


async def close_all(agents: list[Agent]) -> None:
    await asyncio.gather(*(a.close() for a in agents))


# -- profiling -------------------------------------------------------------------


class Profiler:
    """Record a process with py-spy while a phase runs (``--profile DIR``).

    Writes ``DIR/<name>.txt`` (py-spy's collapsed stacks) and
    ``DIR/<name>.top.txt`` (the functions with the most samples, self and total).
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._exe = self._find_py_spy() if directory is not None else None

    @staticmethod
    def _find_py_spy() -> str:
        candidate = Path(sys.executable).with_name("py-spy")
        exe = str(candidate) if candidate.exists() else shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        return exe

    def start(self, pid: int, name: str) -> subprocess.Popen[bytes] | None:
        if self.directory is None or self._exe is None:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        out = self.directory / f"{name}.txt"
        argv = [self._exe, "record", "--pid", str(pid), "--format", "raw"]
        argv += ["--rate", "200", "--output", str(out)]
        return subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )

    async def stop(self, proc: subprocess.Popen[bytes] | None, name: str) -> None:
        if proc is None or self.directory is None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 20.0)
        except TimeoutError:
            proc.kill()
            return
        collapsed = self.directory / f"{name}.txt"
        if collapsed.exists():
            (self.directory / f"{name}.top.txt").write_text(summarize_collapsed(collapsed))


def summarize_collapsed(path: Path, top: int = 40) -> str:
    """The functions with the most samples in a collapsed-stack file, self and total."""
    self_count: collections.Counter[str] = collections.Counter()
    total_count: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [
            _LINE.sub(")", f)
            for f in stack.split(";")
            if f and not f.startswith(("process ", "thread "))
        ]
        if not frames:
            continue
        self_count[frames[-1]] += count
        for frame in set(frames):
            total_count[frame] += count
    out = [f"{samples} samples", "", "self %  function"]
    out += [f"{100 * n / max(samples, 1):6.1f}  {f}" for f, n in self_count.most_common(top)]
    out += ["", "total %  function"]
    out += [f"{100 * n / max(samples, 1):6.1f}  {f}" for f, n in total_count.most_common(top)]
    return "\n".join(out) + "\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(pids: Iterable[int]) -> dict[int, float]:
    """:func:`cpu_seconds` of each pid that still exists."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            out[pid] = cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            continue
    return out


def machine_busy_seconds() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of the whole machine so far (``/proc/stat``, all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz
