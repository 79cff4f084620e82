"""Part planning for compose: the parts reproduce the requested bytes in order and obey S3's part
rules (all but the last >= the minimum, none above the maximum), copying large ranges server-side."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from razorfs.store.base import CopyRange, FileRange
from razorfs.store.errors import InvalidRequest
from razorfs.store.part_plan import (
    MAX_PARTS,
    MIN_PART_BYTES,
    CopyPart,
    DataPart,
    Part,
    Segment,
    part_size_for,
    plan_parts,
)

MIN = 5  # tiny sizes keep the model cheap; the planner takes the limits as parameters
DATA = 8
COPY = 12
LOCAL = Path("/local")


def byte_ids(seg: Segment) -> list[tuple[str, int]]:
    source = seg.source_key if isinstance(seg, CopyRange) else str(seg.path)
    return [(source, seg.start + i) for i in range(seg.length)]


def part_ids(part: Part) -> list[tuple[str, int]]:
    if isinstance(part, CopyPart):
        return byte_ids(CopyRange(part.source_key, part.start, part.length))
    return [b for seg in part.segments for b in byte_ids(seg)]


def check_rules(parts: list[Part]) -> None:
    for i, part in enumerate(parts):
        assert part.length > 0
        if i < len(parts) - 1:
            assert part.length >= MIN, f"part {i} of {parts} is below the minimum"
        if isinstance(part, CopyPart):
            assert part.length <= COPY + MIN
        else:
            assert part.length <= DATA + MIN


segments = st.lists(
    st.one_of(
        st.builds(CopyRange, st.sampled_from(["a", "b"]), st.integers(0, 50), st.integers(0, 40)),
        st.builds(FileRange, st.just(LOCAL), st.integers(0, 50), st.integers(0, 20)),
    ),
    max_size=12,
)


@given(segments)
@settings(max_examples=400, deadline=None)
def test_plan_reproduces_the_bytes_in_order_and_obeys_part_rules(segs: list[Segment]) -> None:
    parts = plan_parts(segs, DATA, COPY, min_part_bytes=MIN)
    assert [b for p in parts for b in part_ids(p)] == [b for s in segs for b in byte_ids(s)]
    check_rules(parts)


def test_large_copied_ranges_stay_server_side_around_a_small_local_patch() -> None:
    mib = 1024 * 1024
    parts = plan_parts(
        [CopyRange("obj", 0, 100 * mib), FileRange(LOCAL, 0, 4096), CopyRange("obj", 100 * mib + 4096, 100 * mib)],
        data_part_bytes=8 * mib,
        copy_part_bytes=64 * mib,
    )
    check_sizes = [p.length for p in parts]
    assert sum(check_sizes) == 200 * mib + 4096
    data_bytes = sum(p.length for p in parts if isinstance(p, DataPart))
    assert data_bytes == MIN_PART_BYTES  # the patch plus just enough of the next copy to reach 5 MiB
    assert all(p.length >= MIN_PART_BYTES for p in parts[:-1])


def test_small_pending_data_grows_the_previous_data_part_instead_of_downloading() -> None:
    parts = plan_parts(
        [FileRange(LOCAL, 0, 11), FileRange(LOCAL, 100, 1), CopyRange("a", 0, 30)], DATA, COPY, min_part_bytes=MIN
    )
    assert isinstance(parts[0], DataPart) and parts[0].length == 12  # 8 + 3 left over + 1
    assert all(isinstance(p, CopyPart) for p in parts[1:])
    assert sum(p.length for p in parts[1:]) == 30


def test_small_pending_data_after_a_copy_borrows_the_start_of_the_next_copy() -> None:
    parts = plan_parts(
        [CopyRange("a", 0, 10), FileRange(LOCAL, 0, 2), CopyRange("b", 0, 20)], DATA, COPY, min_part_bytes=MIN
    )
    assert parts[0] == CopyPart("a", 0, 10)
    assert parts[1] == DataPart((FileRange(LOCAL, 0, 2), CopyRange("b", 0, 3)))
    assert parts[2:] == [CopyPart("b", 3, 12), CopyPart("b", 15, 5)]  # split at the copy part size


def test_empty_input_plans_no_parts_and_negative_ranges_are_rejected() -> None:
    assert plan_parts([CopyRange("a", 0, 0)], DATA, COPY, min_part_bytes=MIN) == []
    with pytest.raises(InvalidRequest):
        plan_parts([FileRange(LOCAL, -1, 3)], DATA, COPY, min_part_bytes=MIN)


def test_part_size_grows_so_huge_objects_fit_in_10000_parts() -> None:
    mib = 1024 * 1024
    assert part_size_for(10 * mib, 8 * mib) == 8 * mib
    assert part_size_for(0, 1) == MIN_PART_BYTES
    huge = 1024 * 1024 * mib  # 1 TiB
    assert part_size_for(huge, 8 * mib) * MAX_PARTS >= huge
