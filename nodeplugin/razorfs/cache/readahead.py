"""`ReadAhead`: per open file handle, detects sequential reads and says how far ahead to fetch.
The window is as long as the current sequential run (capped), so a random 1 MiB read of a huge
object fetches about 2 MiB, while a streaming read soon keeps 32 MiB in flight in parallel.
A seek resets the run."""

from __future__ import annotations

from dataclasses import dataclass

MAX_READAHEAD_BYTES = 32 * 1024 * 1024


@dataclass
class ReadAhead:
    next_offset: int = -1
    run_bytes: int = 0

    def after_read(self, offset: int, end: int) -> int:
        """Records a read of [offset, end) and returns how many bytes past `end` to prefetch."""
        if offset == self.next_offset:
            self.run_bytes += end - offset
        else:
            self.run_bytes = 0
        self.next_offset = end
        return min(self.run_bytes, MAX_READAHEAD_BYTES)
