"""`RangeMap`: a set of byte offsets kept as sorted, disjoint, non-adjacent half-open intervals.
The cache uses one per file for the bytes present in the sparse cache file and one for the bytes
written since the last upload."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence


class RangeMap:
    def __init__(self, ranges: Sequence[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for start, end in ranges:
            self.add(start, end)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __len__(self) -> int:
        return len(self._starts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeMap) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RangeMap({list(self)!r})"

    def copy(self) -> RangeMap:
        clone = RangeMap()
        clone._starts = list(self._starts)
        clone._ends = list(self._ends)
        return clone

    def total(self) -> int:
        return sum(e - s for s, e in self)

    def add(self, start: int, end: int) -> None:
        if end <= start:
            return
        # First interval that ends at or after `start` (touching merges), last that starts at or
        # before `end`.
        lo = bisect.bisect_left(self._ends, start)
        hi = bisect.bisect_right(self._starts, end)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]

    def remove(self, start: int, end: int) -> None:
        if end <= start:
            return
        lo = bisect.bisect_right(self._ends, start)
        hi = bisect.bisect_left(self._starts, end)
        if lo >= hi:
            return
        keep_starts: list[int] = []
        keep_ends: list[int] = []
        if self._starts[lo] < start:
            keep_starts.append(self._starts[lo])
            keep_ends.append(start)
        if self._ends[hi - 1] > end:
            keep_starts.append(end)
            keep_ends.append(self._ends[hi - 1])
        self._starts[lo:hi] = keep_starts
        self._ends[lo:hi] = keep_ends

    def truncate(self, size: int) -> None:
        self.remove(size, max(size, self._ends[-1]) if self._ends else size)

    def contains(self, start: int, end: int) -> bool:
        if end <= start:
            return True
        i = bisect.bisect_right(self._starts, start) - 1
        return i >= 0 and self._ends[i] >= end

    def overlaps(self, start: int, end: int) -> bool:
        if end <= start:
            return False
        i = bisect.bisect_right(self._ends, start)
        return i < len(self._starts) and self._starts[i] < end

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The gaps of [start, end) not in the map, in order."""
        gaps: list[tuple[int, int]] = []
        pos = start
        i = bisect.bisect_right(self._ends, start)
        while pos < end and i < len(self._starts):
            s, e = self._starts[i], self._ends[i]
            if s >= end:
                break
            if s > pos:
                gaps.append((pos, s))
            pos = max(pos, e)
            i += 1
        if pos < end:
            gaps.append((pos, end))
        return gaps

    def to_list(self) -> list[list[int]]:
        return [[s, e] for s, e in self]

    @classmethod
    def from_list(cls, items: Sequence[Sequence[int]]) -> RangeMap:
        return cls([(int(s), int(e)) for s, e in items])
