"""Log lines of a dispatcher's changes name who made them, and what an override overrode."""

from __future__ import annotations

import logging

from dispatch.eventlog import describe
from dispatch.models import Job, JobEvent, JobState

JOB = Job("job-1", "org-1", "Leak", 45.0, 4.0, frozenset(), 0, JobState.OPEN, 100.0, 100.0)
DEE = {"role": "dispatcher", "id": "dsp-1"}


def line(kind: str, **data: object) -> tuple[int, str]:
    return describe(JOB, JobEvent("job-1", "org-1", 110.0, kind, data))


def test_an_override_names_the_dispatcher_and_the_reason() -> None:
    """An assignment by hand says by whom and, when overridden, which reason it overrode."""
    level, text = line("assigned", worker_id="w-1", offer_id="o-1", wave=1, by=DEE, override="busy")
    assert level == logging.INFO
    assert text.endswith("10.0 s after posting by dispatcher dsp-1, overriding busy")


def test_reopen_wave_and_cancel_by_hand_say_who() -> None:
    """Reopened, a wave sent by hand and a cancel by hand end with who made them."""
    assert line("reopened", by=DEE) == (logging.INFO, "job job-1 reopened by dispatcher dsp-1")
    wave = line("wave", wave=2, radius_m=5000.0, offered=["w-1"], by=DEE)[1]
    assert wave.endswith("within 5000 m by dispatcher dsp-1")
    cancel = line("cancelled", reason="dup", by={"role": "org", "id": "org-1"})[1]
    assert cancel == "job job-1 cancelled (dup) by org org-1"


def test_an_engines_own_change_says_nobody() -> None:
    """Without ``by`` a line is exactly as before."""
    assert line("cancelled", reason="dup")[1] == "job job-1 cancelled (dup)"
