"""The range map against a naive set of byte offsets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from razorfs.cache.range_map import RangeMap

_span = st.tuples(st.integers(0, 200), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1]))
_op = st.tuples(st.sampled_from(["add", "remove", "truncate"]), _span)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=40), _span)
def test_range_map_matches_a_set_of_bytes(ops: list[tuple[str, tuple[int, int]]], probe: tuple[int, int]) -> None:
    rmap = RangeMap()
    model: set[int] = set()
    for name, (start, end) in ops:
        if name == "add":
            rmap.add(start, end)
            model |= set(range(start, end))
        elif name == "remove":
            rmap.remove(start, end)
            model -= set(range(start, end))
        else:
            rmap.truncate(start)
            model = {b for b in model if b < start}
        spans = list(rmap)
        assert all(s < e for s, e in spans)
        assert all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1)), "disjoint, merged"
        assert {b for s, e in spans for b in range(s, e)} == model
        assert rmap.total() == len(model)
    start, end = probe
    assert rmap.contains(start, end) == all(b in model for b in range(start, end))
    assert rmap.overlaps(start, end) == any(b in model for b in range(start, end))
    gaps = {b for s, e in rmap.missing(start, end) for b in range(s, e)}
    assert gaps == {b for b in range(start, end) if b not in model}
    assert RangeMap.from_list(rmap.to_list()) == rmap
