"""The container recipe: slim base, non-root, and its CMD and HEALTHCHECK work as written.

No container runtime is needed: the Dockerfile is read instruction by
instruction, and its ``CMD`` (with the ``ENV`` it sets) and its
``HEALTHCHECK`` command are run here, as the image would run them, against
a real server process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from tests.cluster.cluster import WAIT_S, free_port

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = ROOT.joinpath("Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that runs)."""
    steps = instructions()
    last = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The ``ENV key=value`` pairs of a stage (``$PATH`` left as written)."""
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def exec_form(rest: str) -> list[str]:
    """A ``CMD``/``HEALTHCHECK CMD`` argument list in JSON exec form."""
    argv = json.loads(rest[rest.index("[") :])
    assert isinstance(argv, list)
    assert all(isinstance(a, str) for a in argv)
    return argv


def test_every_stage_starts_from_a_slim_python_image() -> None:
    """Each FROM is an official python ``-slim`` image of a supported version."""
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert bases
    for base in bases:
        name, _, tag = base.partition(":")
        assert name == "python", base
        assert tag.endswith("-slim"), base
        assert tuple(int(p) for p in tag.removesuffix("-slim").split(".")) >= (3, 11)


def test_the_image_runs_as_a_user_it_creates_not_root() -> None:
    """The final stage creates a system user and switches to it before CMD."""
    stage = final_stage()
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0", "0:0")
    created = " ".join(rest for keyword, rest in stage if keyword == "RUN")
    assert "useradd" in created
    assert users[-1] in created
    keywords = [k for k, _ in stage]
    assert keywords.index("USER") < keywords.index("CMD")


def test_only_the_package_sources_are_sent_to_the_build() -> None:
    """.dockerignore excludes everything but what the COPY lines name, and those exist."""
    ignore = ROOT.joinpath(".dockerignore").read_text().split()
    allowed = {p.removeprefix("!").rstrip("/") for p in ignore if p.startswith("!")}
    assert "*" in ignore
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in shlex.split(rest)[:-1]:
                assert source in allowed, source
                assert ROOT.joinpath(source).exists(), source
    assert not allowed & {".venv", "tests", "bench", ".git"}


async def healthcheck(port: int) -> int:
    """Run the HEALTHCHECK command with ``PORT`` set; its exit status."""
    (rest,) = [r for k, r in final_stage() if k == "HEALTHCHECK"]
    argv = exec_form(rest.partition(" CMD ")[2])
    assert argv[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv[1:],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return await proc.wait()


async def test_the_cmd_serves_on_port_passes_the_healthcheck_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    """CMD, run with the image's ENV and a platform's PORT, serves on that port: the
    HEALTHCHECK passes while it runs, fails once it is gone, and SIGTERM ends it with 0."""
    stage = final_stage()
    (cmd,) = [exec_form(r) for k, r in stage if k == "CMD"]
    assert cmd == ["fieldcloud", "serve"]
    env = {k: v for k, v in env_of(stage).items() if k != "PATH"}
    assert env["HOST"] == "0.0.0.0"  # noqa: S104 - the image listens on its interface
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FIELDCLOUD_")}
    environ.pop("DATABASE_URL", None)
    environ.pop("REDIS_URL", None)
    # Here on loopback only: the healthcheck asks 127.0.0.1, which both reach.
    environ.update(env, HOST="127.0.0.1", PORT=str(port))
    script = Path(sys.executable).with_name(cmd[0])
    log = tmp_path.joinpath("serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        str(script), *cmd[1:], env=environ, stdout=log, stderr=log
    )
    try:
        async with asyncio.timeout(WAIT_S):
            while await healthcheck(port) != 0:
                assert proc.returncode is None, tmp_path.joinpath("serve.log").read_text()
                await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT_S):
            assert await proc.wait() == 0
        assert await healthcheck(port) != 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
