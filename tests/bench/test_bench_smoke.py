"""The quick benchmark runs end to end, in both modes, and cleans up after itself.

It runs ``python -m bench --quick --json PATH`` as a subprocess,
exactly as CI and a developer would, and reads the JSON it writes. No goal is
asserted here: a quick run is too small and too short for the goals, which
are stated for the full run (docs/benchmarks.md). What must hold is that
every scenario ran in every mode, that every measured row carries finite,
positive figures, and that the run's own PostgreSQL database and Redis key
prefix are gone afterwards -- also when the run is stopped half-way.

The quick run includes the PostgreSQL + Redis scenarios, so these tests need
both services (``tests.services``, as the rest of the suite): when they
do not answer the bench refuses to start and the tests fail, naming the
service; they never skip.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from bench.runner import COLUMNS, SCENARIOS
from tests.services import PG_ADMIN_DSN, REDIS_URL

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ("ingest", "nearest", "offers", "connections", "scaleout")
TIMEOUT_S = 300.0
PRODUCTION_ROWS = {
    "ingest": "location ingest (PostgreSQL + Redis)",
    "offers": "offer latency across 2 instances",
    "connections": "memory per idle socket (PostgreSQL + Redis)",
    "scaleout": "scale-out: ingest over 2 instances vs 1",
}


def _bench(*args: str) -> list[str]:
    services = ["--redis-url", REDIS_URL, "--database-url", PG_ADMIN_DSN]
    return [sys.executable, "-m", "bench", *services, *args]


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM first, so the bench still removes its database and keys; then kill."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_bench(*args: str, timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run the bench to the end (stopped with SIGTERM, not killed, on a timeout)."""
    with subprocess.Popen(
        _bench(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise
        finally:
            _stop(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


async def _leftovers(database: str, prefix: str) -> tuple[bool, int]:
    """Whether ``database`` still exists, and how many keys remain under ``prefix``."""
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
    finally:
        await conn.close()
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await client.aclose()
    return exists is not None, len(keys)


@pytest.mark.slow
@pytest.mark.timeout(300)  # the whole quick benchmark, both modes
def test_quick_bench_reports_every_scenario_with_finite_positive_figures(
    tmp_path: Path,
) -> None:
    """Every scenario is in the JSON, in both modes; measured rows have finite, positive values."""
    out = tmp_path / "bench.json"
    proc = _run_bench("--quick", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]

    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["quick"] is True
    assert doc["modes"] == ["memory", "production"]
    assert set(doc["scenarios"]) == set(SCENARIOS)
    for name in MEASURED:
        scenario = doc["scenarios"][name]
        assert scenario["status"] == "ok", (name, scenario)
        measured = [row for row in scenario["rows"] if row["status"] == "ok"]
        assert measured, name
        for row in measured:
            assert row["values"], row
            for key, value in row["values"].items():
                assert isinstance(value, int | float), (row["label"], key)
                assert math.isfinite(value), (row["label"], key, value)
                assert value > 0, (row["label"], key, value)
    for name, label in PRODUCTION_ROWS.items():
        rows = doc["scenarios"][name]["rows"]
        assert any(r["label"].startswith(label) and r["status"] == "ok" for r in rows), (
            name,
            [r["label"] for r in rows],
        )
    offers = doc["scenarios"]["offers"]["details"]["production"]
    assert offers["instances"] == 2, offers
    assert offers["jobs_offered"] > 0, offers

    services = doc["services"]
    assert services["databases"] == 1, services
    assert "error" not in services, services
    exists, keys = asyncio.run(_leftovers(services["database"], services["key_prefix"]))
    assert not exists, f"database {services['database']} was not dropped"
    assert keys == 0, f"{keys} Redis keys left under {services['key_prefix']}"

    header = proc.stdout.splitlines()[0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(COLUMNS)


def test_bench_refuses_to_start_when_postgresql_does_not_answer(tmp_path: Path) -> None:
    """Production mode without PostgreSQL fails at once, naming it (no scenario runs)."""
    proc = _run_bench(
        "--quick",
        "--mode",
        "production",
        "--scenarios",
        "ingest",
        "--database-url",
        "postgresql://postgres@127.0.0.1:1/postgres",
        "--json",
        str(tmp_path / "bench.json"),
        timeout_s=60,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "PostgreSQL does not answer at postgresql://postgres@127.0.0.1:1/postgres" in (
        proc.stderr
    )
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.slow
def test_interrupted_bench_drops_its_database_and_keys() -> None:
    """SIGTERM half-way through a production scenario: servers stop, services are removed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    database = ""
    with subprocess.Popen(
        _bench("--quick", "--mode", "production", "--scenarios", "ingest"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 60
            seen: list[str] = []
            for line in proc.stderr:
                seen.append(line)
                if line.startswith("bench: created database "):
                    database = line.split()[3]
                if "ingest: fieldcloud PostgreSQL + Redis for" in line:
                    break
                assert time.monotonic() < deadline, "".join(seen)
            else:
                pytest.fail(f"the bench ended before the production ingest:\n{''.join(seen)}")
            assert database.startswith("fieldcloud_bench_"), "".join(seen)
            exists, _ = asyncio.run(_leftovers(database, database))
            assert exists, f"database {database} is not there while the bench runs"
            proc.send_signal(signal.SIGTERM)
            rest = proc.stderr.read()
            assert proc.wait(timeout=60) == 143, rest[-3000:]
        finally:
            _stop(proc)
    assert f"dropped database {database}" in rest, rest[-3000:]
    exists, keys = asyncio.run(_leftovers(database, database))
    assert not exists, f"database {database} was not dropped"
    assert keys == 0, f"{keys} Redis keys left under {database}"
