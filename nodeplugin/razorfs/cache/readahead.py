"""`ReadAhead`: per open file handle, detects sequential reads and says how far ahead to fetch.
The window is as long as the current sequential run for the first few MiB (so reading 1 MiB of a
huge object fetches only a few MiB), then four times the run, capped: a streaming read soon keeps
several large ranged GETs in flight ahead of the reader. A seek resets the run; a read that does
not continue the previous one gets no window (the cache then fetches only a small range around
it)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_READAHEAD_BYTES = 64 * 1024 * 1024
# Below this run length the window equals the run; from it on, four times the run.
RAMP_RUN_BYTES = 4 * 1024 * 1024


@dataclass
class ReadAhead:
    next_offset: int = -1
    run_bytes: int = 0

    def after_read(self, offset: int, end: int) -> int:
        """Records a read of [offset, end) and returns how many bytes past `end` to prefetch
        (0 when the read is not part of a sequential run)."""
        if offset == self.next_offset:
            self.run_bytes += end - offset
        else:
            self.run_bytes = 0
        self.next_offset = end
        window = self.run_bytes if self.run_bytes < RAMP_RUN_BYTES else 4 * self.run_bytes
        return min(window, MAX_READAHEAD_BYTES)
