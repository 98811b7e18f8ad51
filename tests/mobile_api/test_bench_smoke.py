"""The quick benchmark runs end to end and reports every scenario.

It runs ``python -m mobile_api.bench --quick --json PATH`` as a subprocess,
exactly as CI and a developer would, and reads the JSON it writes. No goal is
asserted here: a quick run is too small and too short for the goals, which
are stated for the full run (docs/benchmarks.md). What must hold is that
every scenario ran, that every measured row carries finite, positive
figures, and that planned-but-impossible rows are marked as slots.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from mobile_api.bench.runner import COLUMNS, SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ("ingest", "nearest", "offers", "connections")
TIMEOUT_S = 300.0


def _run_quick_bench(json_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mobile_api.bench", "--quick", "--json", str(json_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_quick_bench_reports_every_scenario_with_finite_positive_figures(
    tmp_path: Path,
) -> None:
    """Every scenario is in the JSON; every measured row has finite, positive values."""
    out = tmp_path / "bench.json"
    proc = _run_quick_bench(out)
    assert proc.returncode == 0, proc.stderr[-4000:]

    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["quick"] is True
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
    assert doc["scenarios"]["scaleout"]["status"] == "slot"

    header = proc.stdout.splitlines()[0]
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(COLUMNS)
