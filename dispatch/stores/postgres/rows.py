"""Tables whose columns are the fields of a dataclass, and many rows in one statement.

``Table(name, Model)`` reads the column list (and each column's SQL type) off
the dataclass, so no column list is spelled out by hand: a table's columns
are named like its model's fields (extra columns, such as ``jobs.cell``, are
the caller's). ``insert_many`` writes any number of rows with one array per
column (``unnest … WITH ORDINALITY``, inserted in the order given) — one
statement, one round trip, whatever the number of rows; ``arrays`` builds its
arguments.

Rules for callers: a field typed ``str``/``int``/``float`` (optionally
``| None``), an enum (stored by value), a ``Mapping`` (stored as ``jsonb``)
or ``frozenset[str]`` (a sorted ``text[]``; not in ``insert_many``) maps to a
column; other field types are refused when the ``Table`` is made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from enum import Enum
from typing import Any

__all__ = ["Table", "column_value"]

_SCALARS = {"str": "text", "int": "int8", "float": "float8", "bool": "bool"}


def _sql_type(annotation: str) -> str:
    base = annotation.removesuffix(" | None")
    if base in _SCALARS:
        return _SCALARS[base]
    if base.startswith("Mapping"):
        return "jsonb"
    if base == "frozenset[str]":
        return "text[]"
    if base[:1].isupper() and "[" not in base:
        return "text"  # an enum of the models, stored by its value
    raise TypeError(f"no column type for a field of type {annotation!r}")


def column_value(value: Any) -> Any:
    """A field's value as its column takes it: enums by value, skills as a sorted list."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(value)
    return value


class Table:
    """A table whose columns are ``model``'s fields (``skip``: fields it does not store)."""

    def __init__(self, name: str, model: type, skip: Sequence[str] = ()) -> None:
        self.name = name
        found = [f for f in fields(model) if f.name not in skip]
        self.columns: tuple[str, ...] = tuple(f.name for f in found)
        self.types: dict[str, str] = {f.name: _sql_type(str(f.type)) for f in found}
        self.select = ", ".join(self.columns)
        """The column list, for ``SELECT {table.select} FROM …``."""

    def insert_many(self, first: int, suffix: str = "") -> str:
        """``INSERT`` of the rows in arguments ``$first …`` (one array per column), in order.

        ``suffix`` follows the statement (an ``ON CONFLICT`` clause).
        """
        if any(t.endswith("[]") for t in self.types.values()):
            raise TypeError(f"{self.name}: array columns cannot be unnested row by row")
        arrays = ", ".join(
            f"${first + i}::{'text' if self.types[c] == 'jsonb' else self.types[c]}[]"
            for i, c in enumerate(self.columns)
        )
        values = ", ".join(
            f"r.{c}::jsonb" if self.types[c] == "jsonb" else f"r.{c}" for c in self.columns
        )
        return (
            f"INSERT INTO {self.name} ({self.select}) SELECT {values}"
            f" FROM unnest({arrays}) WITH ORDINALITY AS r({self.select}, ord)"
            f" ORDER BY r.ord {suffix}"
        )

    def arrays(self, rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
        """``insert_many``'s arguments for ``rows`` (each: column name -> field value)."""
        out: list[list[Any]] = []
        for c in self.columns:
            if self.types[c] == "jsonb":
                out.append([json.dumps(dict(r[c]), separators=(",", ":")) for r in rows])
            else:
                out.append([column_value(r[c]) for r in rows])
        return out
