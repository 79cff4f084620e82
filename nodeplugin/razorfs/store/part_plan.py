"""`plan_parts`: how a composed object (copied ranges of existing objects + local file ranges) is cut
into multipart-upload parts that S3 accepts.

S3's rules: every part but the last is at least 5 MiB, no part exceeds 5 GiB, at most 10,000
parts. Large copied ranges become UploadPartCopy parts (no bytes cross the node); local ranges and
copied ranges too small to stand alone become data parts, uploaded from memory, whose copied
segments are downloaded first. Pure functions, so the rules are unit-tested without a server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from razorfs.store.base import CopyRange, FileRange
from razorfs.store.errors import InvalidRequest

MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000

Segment = CopyRange | FileRange


@dataclass(frozen=True)
class CopyPart:
    """Uploaded with UploadPartCopy: bytes [start, start+length) of `source_key`."""

    source_key: str
    start: int
    length: int


@dataclass(frozen=True)
class DataPart:
    """Uploaded with UploadPart: the concatenation of its segments' bytes."""

    segments: tuple[Segment, ...]

    @property
    def length(self) -> int:
        return sum(s.length for s in self.segments)


Part = CopyPart | DataPart


def part_size_for(total_bytes: int, part_size_bytes: int) -> int:
    """`part_size_bytes`, grown if needed so that `total_bytes` fits in MAX_PARTS parts."""
    needed = -(-total_bytes // MAX_PARTS)
    return max(part_size_bytes, needed, MIN_PART_BYTES)


def _slice(segment: Segment, offset: int, length: int) -> Segment:
    if isinstance(segment, CopyRange):
        return CopyRange(segment.source_key, segment.start + offset, length)
    return FileRange(segment.path, segment.start + offset, length)


class _Planner:
    def __init__(self, data_part_bytes: int, copy_part_bytes: int, min_part_bytes: int):
        self.data_part_bytes = data_part_bytes
        self.copy_part_bytes = copy_part_bytes
        self.min_part_bytes = min_part_bytes
        self.parts: list[Part] = []
        self.pending: list[Segment] = []
        self.pending_bytes = 0

    def add_data(self, segment: Segment) -> None:
        offset = 0
        while offset < segment.length:
            take = min(segment.length - offset, self.data_part_bytes - self.pending_bytes)
            self.pending.append(_slice(segment, offset, take))
            self.pending_bytes += take
            offset += take
            if self.pending_bytes >= self.data_part_bytes:
                self._emit_pending()

    def add_copy(self, copy: CopyRange) -> None:
        if copy.length < self.min_part_bytes:
            self.add_data(copy)
            return
        if 0 < self.pending_bytes < self.min_part_bytes:
            # The pending data cannot be a part on its own. Growing the previous data part is free;
            # otherwise borrow the start of this copy (download it) to fill the pending part.
            last = self.parts[-1] if self.parts else None
            if isinstance(last, DataPart) and last.length + self.pending_bytes <= MAX_PART_BYTES:
                self.parts[-1] = DataPart(last.segments + tuple(self.pending))
                self.pending, self.pending_bytes = [], 0
            else:
                need = self.min_part_bytes - self.pending_bytes
                if copy.length - need < self.min_part_bytes:
                    self.add_data(copy)
                    return
                self.add_data(_slice(copy, 0, need))
                copy = CopyRange(copy.source_key, copy.start + need, copy.length - need)
        self._emit_pending()
        offset = 0
        while offset < copy.length:
            take = min(self.copy_part_bytes, copy.length - offset)
            rest = copy.length - offset - take
            if 0 < rest < self.min_part_bytes:
                take += rest  # fold a small tail into this part rather than leave it alone
            self.parts.append(CopyPart(copy.source_key, copy.start + offset, take))
            offset += take

    def _emit_pending(self) -> None:
        if self.pending:
            self.parts.append(DataPart(tuple(self.pending)))
            self.pending, self.pending_bytes = [], 0

    def finish(self) -> list[Part]:
        self._emit_pending()  # the last part may be small
        return self.parts


def plan_parts(
    segments: Sequence[Segment],
    data_part_bytes: int,
    copy_part_bytes: int = 1024 * 1024 * 1024,
    min_part_bytes: int = MIN_PART_BYTES,
) -> list[Part]:
    """Parts whose concatenation is `segments`' bytes, in order, obeying S3's part rules.
    Raises InvalidRequest for negative ranges or when more than MAX_PARTS parts would be needed."""
    if not min_part_bytes <= data_part_bytes <= MAX_PART_BYTES - min_part_bytes:
        raise ValueError(f"data part size {data_part_bytes} outside [{min_part_bytes}, 5 GiB - min]")
    if not min_part_bytes <= copy_part_bytes <= MAX_PART_BYTES - min_part_bytes:
        raise ValueError(f"copy part size {copy_part_bytes} outside [{min_part_bytes}, 5 GiB - min]")
    planner = _Planner(data_part_bytes, copy_part_bytes, min_part_bytes)
    for segment in segments:
        if segment.start < 0 or segment.length < 0:
            raise InvalidRequest(f"compose: negative range {segment}")
        if segment.length == 0:
            continue
        if isinstance(segment, CopyRange):
            planner.add_copy(segment)
        else:
            planner.add_data(segment)
    parts = planner.finish()
    if len(parts) > MAX_PARTS:
        raise InvalidRequest(f"compose: {len(parts)} parts exceed S3's limit of {MAX_PARTS}")
    return parts
