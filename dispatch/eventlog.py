"""One log line per domain event, under the ``fieldcloud.dispatch`` logger.

The service hands every job event it persisted to ``log_events`` (after the
transaction that made it). INFO is for what an operator wants to follow — a
job posted, a wave sent, assigned, completed, unfilled, cancelled, reopened
(a dispatcher's change names who made it, an override what it overrode); the
rest (declines, expiries, withdrawals, late offers, en_route/on_site) is DEBUG.
Ids and numbers only: no token, no key, no description.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from .models import Job, JobEvent

log = logging.getLogger("fieldcloud.dispatch")


def describe(job: Job, event: JobEvent) -> tuple[int, str]:
    """The level and text of ``event``'s log line."""
    d = event.data
    kind = event.kind
    if kind == "created":
        skills = ",".join(d.get("skills", [])) or "none"
        return logging.INFO, (
            f"job {job.id} posted by {job.org_id}: {job.title!r} at {job.lat:.5f},{job.lng:.5f},"
            f" skills {skills}, priority {job.priority}"
        )
    if kind == "wave":
        offered = d.get("offered", [])
        reach = f"within {d.get('radius_m', 0):g} m"
        if offered:
            return logging.INFO, (
                f"job {job.id} wave {d.get('wave')} sent to {len(offered)} worker(s) {reach}"
                f"{_by(d)}"
            )
        return logging.INFO, f"job {job.id} wave {d.get('wave')}: nobody eligible {reach}{_by(d)}"
    if kind == "assigned":
        after = event.at - job.created_at
        return logging.INFO, (
            f"job {job.id} assigned to {d.get('worker_id')} (offer {d.get('offer_id')},"
            f" wave {d.get('wave')}) {after:.1f} s after posting{_by(d)}"
        )
    if kind == "reopened":
        return logging.INFO, f"job {job.id} reopened{_by(d)}"
    if kind == "completed":
        return logging.INFO, f"job {job.id} completed by {d.get('worker_id')}"
    if kind == "unfilled":
        return logging.INFO, f"job {job.id} unfilled after {d.get('waves')} wave(s)"
    if kind == "cancelled":
        reason = d.get("reason") or "no reason given"
        return logging.INFO, f"job {job.id} cancelled ({reason}){_by(d)}"
    details = " ".join(f"{k}={v}" for k, v in sorted(d.items()))
    return logging.DEBUG, f"job {job.id} {kind} {details}".rstrip()


def _by(data: Mapping[str, Any]) -> str:
    """`` by <role> <id>`` (and the reason overridden) for a dispatcher's change; else ''."""
    by = data.get("by")
    if not isinstance(by, Mapping):
        return ""
    override = data.get("override")
    tail = f", overriding {override}" if override else ""
    return f" by {by.get('role')} {by.get('id')}{tail}"


def log_events(job: Job, events: Iterable[JobEvent]) -> None:
    """Log each of ``job``'s ``events`` (see the module docstring)."""
    if not log.isEnabledFor(logging.INFO):
        return
    for event in events:
        level, text = describe(job, event)
        if log.isEnabledFor(level):
            log.log(level, "%s", text)
