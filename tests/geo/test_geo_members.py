"""CellMembers: one cell's keys and positions in parallel arrays."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from geo.members import CellMembers


def assert_matches(bucket: CellMembers[str], model: dict[str, tuple[float, float]]) -> None:
    """The bucket holds exactly ``model``, slot by slot in its three arrays."""
    assert len(bucket) == len(model)
    assert sorted(bucket) == sorted(model)
    assert len(bucket.keys) == len(bucket.lats) == len(bucket.lngs)
    for key, lat, lng in zip(bucket.keys, bucket.lats, bucket.lngs, strict=True):
        assert model[key] == (lat, lng)
        assert key in bucket
        assert bucket.position(key) == (lat, lng)


def test_put_adds_then_moves_in_place() -> None:
    """A new key gets a slot; putting it again only changes its position."""
    bucket: CellMembers[str] = CellMembers()
    bucket.put("a", 1.0, 2.0)
    bucket.put("b", 3.0, 4.0)
    bucket.put("a", 5.0, 6.0)
    assert bucket.keys == ["a", "b"]
    assert_matches(bucket, {"a": (5.0, 6.0), "b": (3.0, 4.0)})
    assert "c" not in bucket
    assert bucket.position("c") is None


def test_discard_moves_the_last_slot_into_the_hole() -> None:
    """Removing a middle key keeps the arrays parallel; absent keys are ignored."""
    bucket: CellMembers[str] = CellMembers()
    for i, key in enumerate("abcd"):
        bucket.put(key, float(i), -float(i))
    bucket.discard("b")
    bucket.discard("zz")
    assert bucket.keys == ["a", "d", "c"]
    assert_matches(bucket, {"a": (0.0, -0.0), "c": (2.0, -2.0), "d": (3.0, -3.0)})
    for key in "acd":
        bucket.discard(key)
    assert_matches(bucket, {})
    assert not bucket


def test_int_coordinates_are_stored_as_floats() -> None:
    """Positions come back as floats whatever number type went in."""
    bucket: CellMembers[int] = CellMembers()
    bucket.put(7, 10, -20)
    position = bucket.position(7)
    assert position == (10.0, -20.0)
    assert position is not None
    assert all(type(v) is float for v in position)


operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "discard"]),
        st.sampled_from([f"k{i}" for i in range(8)]),
        st.floats(-90.0, 90.0),
        st.floats(-180.0, 180.0),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_random_operations_match_a_dict(ops: list[tuple[str, str, float, float]]) -> None:
    """Any sequence of puts and discards leaves the bucket equal to a plain dict model."""
    bucket: CellMembers[str] = CellMembers()
    model: dict[str, tuple[float, float]] = {}
    for op, key, lat, lng in ops:
        if op == "put":
            bucket.put(key, lat, lng)
            model[key] = (lat, lng)
        else:
            bucket.discard(key)
            model.pop(key, None)
        assert_matches(bucket, model)
