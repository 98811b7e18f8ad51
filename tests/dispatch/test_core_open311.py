"""Open311 core: service definitions and answers checked, and the live view of a request."""

from __future__ import annotations

import pytest

from dispatch.errors import InvalidInput
from dispatch.models import Fix, Job, JobEvent, JobState
from dispatch.open311.models import (
    Attribute,
    AttributeValue,
    Datatype,
    ServiceDefinition,
    ServiceRequest,
)
from dispatch.open311.status import Progress, request_view, w3
from dispatch.open311.validation import check_answers, check_definition

COLOURS = (AttributeValue("red", "Red"), AttributeValue("blue", "Blue"))


def service(*attributes: Attribute) -> ServiceDefinition:
    return ServiceDefinition("org_1", "graffiti", "Graffiti", attributes=attributes)


ALL = service(
    Attribute("size", Datatype.NUMBER, "Size in m2", required=True, order=1),
    Attribute("seen", Datatype.DATETIME, "When seen", order=2),
    Attribute("where", Datatype.STRING, "Which wall", order=3),
    Attribute("notes", Datatype.TEXT, "Anything else", order=4),
    Attribute("colour", Datatype.SINGLEVALUELIST, "Main colour", order=5, values=COLOURS),
    Attribute("colours", Datatype.MULTIVALUELIST, "All colours", order=6, values=COLOURS),
    Attribute("info", Datatype.TEXT, "Do not touch it", order=7, variable=False),
)


def test_every_datatype_takes_a_well_formed_answer() -> None:
    """Each datatype's good answer is kept; a multivaluelist keeps its distinct keys in order."""
    answers = check_answers(
        ALL,
        {
            "size": ["2.5"],
            "seen": ["2026-12-01T10:00:00+01:00"],
            "where": ["north wall"],
            "notes": ["two\nlines"],
            "colour": ["red"],
            "colours": ["blue", "red", "blue"],
        },
        frozenset({"colours"}),
    )
    assert answers == {
        "size": "2.5",
        "seen": "2026-12-01T10:00:00+01:00",
        "where": "north wall",
        "notes": "two\nlines",
        "colour": "red",
        "colours": ("blue", "red"),
    }


@pytest.mark.parametrize(
    ("submitted", "listed", "fault"),
    [
        ({}, frozenset(), "size is required"),
        ({"size": ["  "]}, frozenset(), "size is required"),
        ({"size": ["big"]}, frozenset(), "size must be a number"),
        ({"size": ["nan"]}, frozenset(), "size must be a number"),
        ({"size": ["1"], "seen": ["2026-12-01T10:00:00"]}, frozenset(), "time zone"),
        ({"size": ["1"], "seen": ["yesterday"]}, frozenset(), "ISO 8601"),
        ({"size": ["1"], "where": ["a\nb"]}, frozenset(), "one line"),
        ({"size": ["1"], "notes": ["x" * 4001]}, frozenset(), "at most 4000"),
        ({"size": ["1"], "colour": ["green"]}, frozenset(), "colour: not one of its values"),
        ({"size": ["1"], "colour": ["red", "blue"]}, frozenset(), "colour takes one value"),
        ({"size": ["1"], "colour": ["red"]}, frozenset({"colour"}), "colour takes one value"),
        ({"size": ["1"], "colours": ["red", "pink"]}, frozenset(), "colours: not one of"),
        ({"size": ["1"], "shape": ["round"]}, frozenset(), "shape is not asked"),
        ({"size": ["1"], "info": ["x"]}, frozenset(), "info is not asked"),
    ],
)
def test_a_bad_answer_is_refused_naming_its_attribute(
    submitted: dict[str, list[str]], listed: frozenset[str], fault: str
) -> None:
    """Missing, malformed, unknown and informational-only answers are refused by code."""
    with pytest.raises(InvalidInput, match=fault):
        check_answers(ALL, submitted, listed)


@pytest.mark.parametrize(
    ("attributes", "fault"),
    [
        ((Attribute("a b", Datatype.STRING, "x"),), "attribute code"),
        (
            (Attribute("a", Datatype.STRING, "x"), Attribute("a", Datatype.TEXT, "y", order=2)),
            "appears twice",
        ),
        (
            (Attribute("a", Datatype.STRING, "x"), Attribute("b", Datatype.TEXT, "y")),
            "order",
        ),
        ((Attribute("a", Datatype.SINGLEVALUELIST, "x"),), "a list needs"),
        (
            (Attribute("a", Datatype.MULTIVALUELIST, "x", values=COLOURS + COLOURS[:1]),),
            "distinct",
        ),
        ((Attribute("a", Datatype.NUMBER, "x", values=COLOURS),), "only list datatypes"),
    ],
)
def test_a_malformed_definition_is_refused(attributes: tuple[Attribute, ...], fault: str) -> None:
    """Bad codes, reused codes or orders, and values on the wrong datatypes are refused."""
    with pytest.raises(InvalidInput, match=fault):
        check_definition(service(*attributes))


def job(state: JobState, worker_id: str | None = None) -> Job:
    return Job(
        "job_1",
        "org_1",
        "Graffiti",
        48.85,
        2.35,
        frozenset(),
        0,
        state,
        100.0,
        160.0,
        worker_id=worker_id,
    )


REQUEST = ServiceRequest(
    "req_1", "org_1", "tok_1", "graffiti", "Graffiti", "job_1", 48.85, 2.35, 100.0
)


@pytest.mark.parametrize(
    ("state", "status", "notes"),
    [
        (JobState.OPEN, "open", "awaiting a crew"),
        (JobState.UNFILLED, "open", "awaiting a crew"),
        (JobState.ASSIGNED, "open", "crew assigned"),
        (JobState.EN_ROUTE, "open", "crew on the way"),
        (JobState.ON_SITE, "open", "crew on site"),
        (JobState.COMPLETED, "closed", "completed"),
        (JobState.CANCELLED, "closed", "cancelled"),
    ],
)
def test_the_status_and_its_notes_follow_the_job(state: JobState, status: str, notes: str) -> None:
    """Open until completed or cancelled; an unfilled job is still awaiting a crew."""
    view = request_view(REQUEST, job(state), Progress([]), "City", 10.0)
    assert (view["status"], view["status_notes"]) == (status, notes)
    assert view["updated_datetime"] == w3(160.0)
    assert view["agency_responsible"] == "City"


def test_the_expected_time_comes_from_the_crews_distance_then_its_arrival() -> None:
    """Assigned: the fix's time plus distance over speed; on site: the arrival; no position."""
    fix = Fix(48.85 + 0.009, 2.35, None, 150.0)  # about 1 km north
    assigned = request_view(REQUEST, job(JobState.ASSIGNED, "wrk_1"), Progress([], fix), "", 10.0)
    expected = assigned["expected_datetime"]
    assert expected is not None
    assert w3(240.0) <= expected <= w3(260.0)
    arrived = JobEvent("job_1", "org_1", 300.0, "on_site", {"worker_id": "wrk_1"})
    on_site = request_view(
        REQUEST, job(JobState.ON_SITE, "wrk_1"), Progress([arrived], fix), "", 10.0
    )
    assert on_site["expected_datetime"] == w3(300.0)
    done = request_view(REQUEST, job(JobState.COMPLETED, "wrk_1"), Progress([arrived]), "", 10.0)
    assert done["expected_datetime"] is None
    for view in (assigned, on_site):
        assert "wrk_1" not in str(view)
        assert str(fix.lat) not in str(view)
    waiting = request_view(REQUEST, job(JobState.OPEN), Progress([]), "", 10.0)
    assert waiting["expected_datetime"] is None
