"""What every scenario shares: the plan, rows, statistics, the table, the JSON, progress.

A scenario returns :class:`Row` objects. A row carries its numbers twice: as
``values`` (finite, positive floats, for the JSON and the smoke test) and as
the rendered cells of the one table (``figure``, ``baseline``, ``ratio``,
``goal``, ``met``). A row whose measurement is planned but not possible yet is
a *slot* (``status="slot"``, no values); one that could not run here is
``status="skipped"`` with a ``note`` saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import math
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec

from .procs import Profiler, ServerProcess
from .services import DEFAULT_ADMIN_DSN, DEFAULT_REDIS_URL, Services, redact_url

Status = Literal["ok", "slot", "skipped", "failed"]

SCENARIOS = ("ingest", "nearest", "offers", "connections", "scaleout")
"""Every scenario, in the order they run and appear in the table."""

MODES = ("memory", "production")
"""Server storage modes: in-process stores, or PostgreSQL + Redis (``production``).

In ``production`` the servers share the run's own database and Redis key
prefix (:mod:`bench.services`), created before the first scenario
and removed after the last.
"""

MODE_LABELS = {"memory": "memory", "production": "PostgreSQL + Redis"}
"""How a mode is named in the table."""

CITY = "Chicago"
CITY_CENTER = (41.8781, -87.6298)
CITY_HALF_SIDE_M = 20_000.0
"""Everything happens in a 40 km x 40 km box around the center of one real city."""

_M_PER_DEG_LAT = 111_320.0
CITY_DLAT = CITY_HALF_SIDE_M / _M_PER_DEG_LAT
CITY_DLNG = CITY_HALF_SIDE_M / (_M_PER_DEG_LAT * math.cos(math.radians(CITY_CENTER[0])))


def city_point(rng: random.Random) -> tuple[float, float]:
    """A uniformly random ``(lat, lng)`` in the city box."""
    lat, lng = CITY_CENTER
    return (
        lat + rng.uniform(-CITY_DLAT, CITY_DLAT),
        lng + rng.uniform(-CITY_DLNG, CITY_DLNG),
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """How big and how long each scenario is; ``Plan.full()`` or ``Plan.quick()``."""

    quick: bool
    modes: tuple[str, ...]
    # 1. location ingest
    ingest_phones: int
    ingest_procs: int
    ingest_warmup_s: float
    ingest_duration_s: float
    ingest_batch: int
    ingest_window: int
    # 2. nearest query
    nearest_sizes: tuple[int, ...]
    nearest_queries: int
    brute_queries: dict[int, int]
    redis_queries: int
    nearest_budget_s: float
    # 3. and 4. the fleet of idle technician sockets, and offers to them
    fleet_sockets: int
    fleet_procs: int
    offer_rate_per_s: float
    offer_duration_s: float
    # 5. scale-out (production): ingest over this many instances against one
    scaleout_instances: int = 2
    # where things are
    redis_url: str = DEFAULT_REDIS_URL
    database_admin_url: str = DEFAULT_ADMIN_DSN
    seed: int = 20_261_128

    @classmethod
    def full(cls, modes: tuple[str, ...] = MODES) -> Plan:
        return cls(
            quick=False,
            modes=modes,
            ingest_phones=200,
            ingest_procs=2,
            ingest_warmup_s=2.0,
            ingest_duration_s=20.0,
            ingest_batch=16,
            ingest_window=4,
            nearest_sizes=(10_000, 100_000, 1_000_000),
            nearest_queries=2_000,
            brute_queries={10_000: 400, 100_000: 200, 1_000_000: 60},
            redis_queries=1_000,
            nearest_budget_s=3.0,
            fleet_sockets=10_000,
            fleet_procs=2,
            offer_rate_per_s=20.0,
            offer_duration_s=10.0,
        )

    @classmethod
    def for_run(cls, quick: bool, modes: tuple[str, ...] = MODES) -> Plan:
        return cls.small(modes) if quick else cls.full(modes)

    @classmethod
    def small(cls, modes: tuple[str, ...] = MODES) -> Plan:
        return cls(
            quick=True,
            modes=modes,
            ingest_phones=100,
            ingest_procs=2,
            ingest_warmup_s=0.3,
            ingest_duration_s=1.0,
            ingest_batch=16,
            ingest_window=4,
            nearest_sizes=(10_000,),
            nearest_queries=300,
            brute_queries={10_000: 100},
            redis_queries=200,
            nearest_budget_s=0.5,
            fleet_sockets=500,
            fleet_procs=2,
            offer_rate_per_s=20.0,
            offer_duration_s=1.0,
        )


@dataclass(slots=True)
class Context:
    """What a scenario gets: the plan, the progress bar, a scratch folder, the profiler.

    ``services`` is the run's database and key prefix (``None`` unless the
    production mode is selected); ``measured`` passes figures from one
    scenario to a later one of the same run (scale-out reuses the
    one-instance production ingest).
    """

    plan: Plan
    progress: Progress
    workdir: Path
    profiler: Profiler
    services: Services | None = None
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)

    def goal_met(self, met: bool) -> bool | None:
        """Goals are stated for the full run; a quick run reports ``-``."""
        return None if self.plan.quick else met

    def mode_env(self, mode: str) -> dict[str, str]:
        """The environment that puts ``fieldcloud serve`` in ``mode``."""
        if mode == "memory":
            return {}
        if mode == "production":
            if self.services is None:
                raise RuntimeError("production mode without the bench's database and prefix")
            return self.services.env()
        raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")

    async def start_server(
        self, kind: Literal["fieldcloud", "bare"], mode: str, name: str
    ) -> ServerProcess:
        """A fieldcloud server in ``mode`` (or the bare ceiling), healthy and checked."""
        env = self.mode_env(mode) if kind == "fieldcloud" else {}
        return await ServerProcess.start(kind, mode, self.workdir, name, env)

    async def start_servers(self, mode: str, count: int, name: str) -> list[ServerProcess]:
        """``count`` fieldcloud instances in ``mode``, started together."""
        names = [name] if count == 1 else [f"{name}-{chr(65 + i)}" for i in range(count)]
        started = await asyncio.gather(
            *(self.start_server("fieldcloud", mode, n) for n in names), return_exceptions=True
        )
        servers = [s for s in started if isinstance(s, ServerProcess)]
        failure = next((s for s in started if isinstance(s, BaseException)), None)
        if failure is not None:
            await asyncio.gather(*(s.stop() for s in servers))
            raise failure
        return servers


@dataclass(slots=True)
class Row:
    """One line of the table (see the module docstring)."""

    scenario: str
    label: str
    figure: str = "—"
    baseline: str = "—"
    ratio: str = "—"
    goal: str = ""
    met: bool | None = None
    values: dict[str, float] = field(default_factory=dict)
    status: Status = "ok"
    note: str = ""

    def __post_init__(self) -> None:
        for name, value in self.values.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{self.label}: {name}={value!r} is not a finite positive number")


@dataclass(slots=True)
class ScenarioResult:
    """What one scenario reports: its rows and any details worth keeping."""

    name: str
    rows: list[Row]
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def status(self) -> Status:
        if any(r.status == "failed" for r in self.rows):
            return "failed"
        if any(r.status == "ok" for r in self.rows):
            return "ok"
        return "slot" if all(r.status == "slot" for r in self.rows) else "skipped"


# -- statistics and formatting -------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; ``values`` non-empty."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def fmt_rate(per_s: float) -> str:
    return f"{per_s:,.0f}/s"


def fmt_time_s(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_pair_s(p50: float, p99: float) -> str:
    return f"{fmt_time_s(p50)} / {fmt_time_s(p99)}"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.3g}x"


def fmt_speedup(speedup: float) -> str:
    """How many times faster (or slower) than the baseline."""
    if speedup >= 1.0:
        return f"{speedup:.3g}x faster"
    return f"{1 / speedup:.3g}x slower"


def fmt_kib(kib: float) -> str:
    return f"{kib:.1f} KiB"


# -- the table -----------------------------------------------------------------

COLUMNS = ("scenario", "figure", "baseline", "ratio", "goal", "met?")


def _met(row: Row) -> str:
    if row.status == "slot":
        return "slot"
    if row.status in ("skipped", "failed"):
        return row.status.upper() if row.status == "failed" else row.status
    return {True: "yes", False: "NO", None: "-"}[row.met]


def render_table(rows: Sequence[Row]) -> str:
    """The one table, as Markdown (pastes into docs/benchmarks.md as is)."""
    cells = [COLUMNS]
    for row in rows:
        label = row.label if not row.note or row.status == "ok" else f"{row.label} ({row.note})"
        cells.append((label, row.figure, row.baseline, row.ratio, row.goal or "-", _met(row)))
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(c) for c in cells[1:])
    return "\n".join(out)


# -- machine and JSON ------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def source_info() -> dict[str, Any]:
    """Which code was measured: the commit and the files changed since (``git``, if any)."""
    root = Path(__file__).resolve().parents[1]
    info: dict[str, Any] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        run = partial(subprocess.run, cwd=root, capture_output=True, text=True, timeout=10)
        head = run(["git", "rev-parse", "HEAD"])
        if head.returncode == 0:
            info["commit"] = head.stdout.strip()
            status = run(["git", "status", "--porcelain", "--untracked-files=no"])
            info["modified"] = [line[3:] for line in status.stdout.splitlines() if line]
    return info


def machine_info() -> dict[str, Any]:
    """Where the figures were measured."""
    versions = {}
    dists = ("uvicorn", "uvloop", "httptools", "websockets", "starlette", "msgspec", "h3")
    for dist in (*dists, "asyncpg", "redis", "hiredis", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def write_json(
    path: Path,
    plan: Plan,
    results: Sequence[ScenarioResult],
    started: float,
    elapsed: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """Every figure of the run, with the plan, the machine and ``extra`` (the services)."""
    plan_doc = asdict(plan)
    for key in ("redis_url", "database_admin_url"):
        plan_doc[key] = redact_url(plan_doc[key])
    doc = {
        "started_at": started,
        "seconds": elapsed,
        "quick": plan.quick,
        "modes": list(plan.modes),
        "plan": plan_doc,
        "machine": machine_info(),
        "source": source_info(),
        **(extra or {}),
        "scenarios": {
            r.name: {
                "status": r.status,
                "seconds": r.seconds,
                "rows": [asdict(row) for row in r.rows],
                "details": r.details,
            }
            for r in results
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n")


# -- progress --------------------------------------------------------------------


class Progress:
    """A progress bar on stderr, driven by phases with estimated durations.

    On a terminal it redraws one line a few times a second; elsewhere (CI logs)
    it prints one line per phase.
    """

    def __init__(self, total_s: float, stream: TextIO = sys.stderr) -> None:
        self._total = max(total_s, 1e-9)
        self._stream = stream
        self._tty = stream.isatty()
        self._done = 0.0
        self._label = "starting"
        self._phase_est = 0.0
        self._phase_start = time.monotonic()
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        if self._tty:
            self._thread = threading.Thread(target=self._run, name="bench-progress", daemon=True)
            self._thread.start()

    def _fraction(self) -> float:
        within = min(time.monotonic() - self._phase_start, self._phase_est * 0.98)
        return min(1.0, (self._done + within) / self._total)

    def _draw(self) -> None:
        with self._lock:
            frac = self._fraction()
            label = self._label
        width = 28
        filled = round(frac * width)
        elapsed = time.monotonic() - self._start
        bar = "█" * filled + "░" * (width - filled)
        text = f"\r{bar} {frac * 100:3.0f}%  {elapsed:5.1f} s  {label}"
        self._stream.write(text[:120].ljust(100))
        self._stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._draw()

    @contextlib.contextmanager
    def phase(self, label: str, est_s: float) -> Iterator[None]:
        """Run a phase expected to take about ``est_s`` seconds."""
        with self._lock:
            self._label = label
            self._phase_est = est_s
            self._phase_start = time.monotonic()
        if not self._tty:
            elapsed = time.monotonic() - self._start
            pct = self._fraction() * 100
            self._stream.write(f"bench [{pct:3.0f}%] {elapsed:6.1f} s  {label}\n")
            self._stream.flush()
        try:
            yield
        finally:
            with self._lock:
                self._done += est_s
                self._phase_est = 0.0

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            with self._lock:
                self._done = self._total
                self._label = "done"
            self._draw()
            self._stream.write("\n")
        else:
            self._stream.write(f"bench [100%] {time.monotonic() - self._start:6.1f} s  done\n")
        self._stream.flush()
