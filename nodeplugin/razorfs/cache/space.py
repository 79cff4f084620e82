"""`CacheSpace`: the cache's byte budget. It counts the bytes present in cache files, keeps clean
blocks in least-recently-used order and evicts them (never dirty data, never a block a fetch is
filling) to make room, and makes writers wait while dirty data fills the cache (back-pressure)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.range_map import RangeMap
from razorfs.cache.registry import FileRegistry

# Clean data is kept in LRU order and evicted per block.
BLOCK_BYTES = 1024 * 1024


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    evicted_bytes: int = 0
    # Opens answered with FOPEN_KEEP_CACHE (the kernel's pages of the file stay valid) or without.
    opens_keeping_pages: int = 0
    opens_dropping_pages: int = 0


class CacheSpace:
    def __init__(self, registry: FileRegistry, limit_bytes: int, counters: CacheCounters) -> None:
        self.registry = registry
        self.limit_bytes = limit_bytes
        self.counters = counters
        self.cached_bytes = 0
        # Bytes of uploads running: back-pressure waits for them to finish.
        self.uploading_bytes = 0
        self._lru: OrderedDict[tuple[int, int], None] = OrderedDict()
        # Set by the fetcher: whether a GET is filling part of block (file_id, block).
        self.block_in_flight: Callable[[int, int], bool] = lambda file_id, block: False

    # -- accounting -------------------------------------------------------------------------------

    def count_present(self, f: CachedFile) -> None:
        """A file entering the registry with bytes already present (journal replay)."""
        self.cached_bytes += f.present.total()

    def add_present(self, f: CachedFile, start: int, end: int) -> None:
        before = f.present.total()
        f.present.add(start, end)
        self.cached_bytes += f.present.total() - before

    def truncate_present(self, f: CachedFile, size: int) -> None:
        before = f.present.total()
        f.present.truncate(size)
        self.cached_bytes -= before - f.present.total()

    def drop_present(self, f: CachedFile) -> None:
        self.cached_bytes -= f.present.total()
        f.present = RangeMap()
        f.written = RangeMap()

    def touch(self, f: CachedFile, start: int, end: int) -> None:
        if end <= start:
            return
        for b in range(start // BLOCK_BYTES, (end - 1) // BLOCK_BYTES + 1):
            self._lru[(f.file_id, b)] = None
            self._lru.move_to_end((f.file_id, b))

    # -- eviction and back-pressure --------------------------------------------------------------

    def make_room(self, incoming: int) -> None:
        """Evicts clean blocks, least recently used first, until `incoming` more bytes fit."""
        skipped: list[tuple[int, int]] = []
        while self.cached_bytes + incoming > self.limit_bytes and self._lru:
            slot, _ = self._lru.popitem(last=False)
            f = self.registry.by_id(slot[0])
            if f is None:
                continue
            start = slot[1] * BLOCK_BYTES
            end = start + BLOCK_BYTES
            if f.dirty or self.block_in_flight(slot[0], slot[1]):
                skipped.append(slot)  # dirty data is never evicted
                continue
            if not f.present.overlaps(start, end):
                continue
            before = f.present.total()
            f.punch_hole(start, BLOCK_BYTES)
            f.present.remove(start, end)
            freed = before - f.present.total()
            self.cached_bytes -= freed
            self.counters.evicted_bytes += freed
        for slot in reversed(skipped):
            self._lru[slot] = None
            self._lru.move_to_end(slot, last=False)

    async def wait_for_room(self, f: CachedFile, incoming: int) -> None:
        """Back-pressure: waits while dirty data fills the cache and uploads can free it. If only
        data nobody can upload yet (still open, never closed) fills it, the write goes ahead
        (the limit is exceeded rather than deadlocking the writer)."""
        while True:
            self.make_room(incoming)
            if self.cached_bytes + incoming <= self.limit_bytes:
                return
            if not any(g is not f and g.needs_upload for g in self.registry.files()) and self.uploading_bytes == 0:
                return
            await self.registry.wait_changed()
