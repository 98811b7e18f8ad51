"""The demo runs the real server with a simulated fleet and real work gets done."""

from __future__ import annotations

import io
import re

import pytest

from mobile_api.demo.run import simulate
from mobile_api.demo.simulator import SimConfig
from mobile_api.settings import Settings


@pytest.mark.slow
async def test_small_fleet_gets_jobs_assigned_and_completed() -> None:
    """A 30-technician fleet fed 4 jobs/s for 6 s receives offers, wins jobs and completes some."""
    config = SimConfig(
        workers=30,
        jobs_per_s=4.0,
        seed=7,
        accept_probability=0.8,
        accept_delay_s=(0.1, 0.3),
        decline_delay_s=(0.1, 0.3),
        prep_s=(0.05, 0.1),
        time_scale=600.0,
        work_minutes=(5.0, 10.0),
        moving_fix_s=0.5,
        on_duty_fraction=1.0,
        ramp_s=0.3,
    )
    out = io.StringIO()
    settings = Settings(admin_token="demo-test-admin", port=0)

    stats = await simulate(
        settings, config, duration_s=6.0, out=out, handle_signals=False, report_every_s=1.0
    )

    text = out.getvalue()
    assert "http://127.0.0.1:" in text
    assert "org API key: fck_" in text
    assert "--token fcw_" in text  # a technician to drive by hand
    assert stats.jobs_posted >= 10
    assert stats.offers >= stats.jobs_assigned >= 1
    assert stats.accepts >= 1
    assert stats.jobs_completed >= 1
    assert stats.fixes > 30
    assert stats.median_assign_s() is not None
    assert stats.median_offer_s() is not None
    assert stats.median_offer_s() < stats.median_assign_s()  # type: ignore[operator]
    assert stats.errors == 0, stats.last_error


async def test_the_summary_separates_current_from_cumulative_figures() -> None:
    """Each summary line says 'now' and 'so far', and online is available + busy + on a break."""
    config = SimConfig(workers=20, jobs_per_s=2.0, seed=3, ramp_s=0.3, accept_delay_s=(0.1, 0.2))
    out = io.StringIO()

    await simulate(
        Settings(admin_token="demo-test-admin", port=0),
        config,
        duration_s=3.0,
        out=out,
        handle_signals=False,
        report_every_s=0.5,
    )

    summaries = [line for line in out.getvalue().splitlines() if " now: " in line]
    assert summaries, out.getvalue()
    shape = re.compile(
        r"now: (\d+) online = (\d+) available \+ (\d+) busy \+ (\d+) on a break .*"
        r"\| so far: \d+ jobs posted, .* \d+ offers, \d+ accepted, \d+ declined, \d+ expired"
        r" \| median: post->offer .*, post->assign .* \(incl\. 0\.1-0\.2 s simulated accept"
    )
    for line in summaries:
        found = shape.search(line)
        assert found is not None, line
        online, available, busy, resting = map(int, found.groups())
        assert online == available + busy + resting
    assert "time x60: driving and on-site work run 60 times faster" in out.getvalue()
