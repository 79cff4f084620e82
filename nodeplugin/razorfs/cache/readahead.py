"""`ReadAhead`: per open file handle, detects sequential reads and says how far ahead to fetch.
The window doubles with every sequential read up to a cap and collapses on a seek, so a random
1 MiB read of a huge object fetches about 1 MiB, and a streaming read keeps S3 busy in parallel."""

from __future__ import annotations

from dataclasses import dataclass

MIN_READAHEAD_BYTES = 1024 * 1024
MAX_READAHEAD_BYTES = 32 * 1024 * 1024


@dataclass
class ReadAhead:
    next_offset: int = -1
    window: int = 0

    def after_read(self, offset: int, end: int) -> int:
        """Records a read of [offset, end) and returns how many bytes past `end` to prefetch."""
        if offset == self.next_offset:
            self.window = min(max(self.window * 2, MIN_READAHEAD_BYTES), MAX_READAHEAD_BYTES)
        else:
            self.window = 0
        self.next_offset = end
        return self.window
