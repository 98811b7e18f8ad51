"""Tables read off dataclasses: columns, types and the many-rows insert (no database)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dispatch.effects import Effect
from dispatch.models import Job
from dispatch.stores.postgres.rows import Table


def test_columns_and_types_come_from_the_fields() -> None:
    """Every field is a column of the type its annotation names, in field order."""
    outbox = Table("outbox", Effect)
    assert outbox.columns == ("id", "kind", "target", "payload", "job_id", "created_at", "due_at")
    assert outbox.types["payload"] == "jsonb"
    assert outbox.types["kind"] == "text"
    assert outbox.types["due_at"] == "float8"


def test_many_rows_go_as_one_array_per_column_in_order() -> None:
    """``arrays`` transposes rows into columns (jsonb as JSON text) for ``insert_many``."""
    outbox = Table("outbox", Effect)
    rows = [
        {c: None for c in outbox.columns} | {"id": "a", "payload": {"n": 1}},
        {c: None for c in outbox.columns} | {"id": "b", "payload": {"n": 2}},
    ]
    arrays = outbox.arrays(rows)
    assert arrays[0] == ["a", "b"]
    assert arrays[outbox.columns.index("payload")] == ['{"n":1}', '{"n":2}']
    sql = outbox.insert_many(3)
    assert "$3::text[]" in sql
    assert "$6::text[]" in sql  # payload travels as text, cast to jsonb
    assert "r.payload::jsonb" in sql
    assert sql.rstrip().endswith("ORDER BY r.ord")


def test_a_field_without_a_column_type_is_refused() -> None:
    """A field type with no column mapping fails when the table is declared, not at run time."""

    @dataclass
    class Odd:
        tags: list[str]

    with pytest.raises(TypeError):
        Table("odd", Odd)
    with pytest.raises(TypeError):
        Table("jobs", Job).insert_many(1)  # skills is an array: not row by row
