"""`RangeFetcher`: fills missing ranges of cached files from their base objects. A random read
fetches the small units it touches; a sequential one fetches aligned chunks, several in flight
ahead of the reader (readahead). Each unit is fetched once however many readers want it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.errors import CacheConflict
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.readahead import ReadAhead
from razorfs.cache.space import BLOCK_BYTES, CacheSpace
from razorfs.store.base import ObjectInfo
from razorfs.store.errors import PreconditionFailed
from razorfs.store.object_attrs import ObjectAttrs

log = logging.getLogger(__name__)

# A non-sequential read fetches the units of this size it touches (a 4 KiB random read costs at
# most 8 KiB from S3); running fetches are tracked per unit.
FETCH_UNIT_BYTES = 8 * 1024
UNITS_PER_BLOCK = BLOCK_BYTES // FETCH_UNIT_BYTES
# A sequential stream fetches chunks of this size (aligned), several in flight ahead of the reader.
SEQ_FETCH_BYTES = 8 * 1024 * 1024
MAX_FILL_ATTEMPTS = 8
# An object this small is fetched whole, with one unranged GET the store checks against the
# object's stored checksum (S3 returns no checksum with a range); larger ones are fetched in
# ranges, unchecked (docs/architecture.md, "End-to-end checksums").
WHOLE_OBJECT_FETCH_BYTES = BLOCK_BYTES


@dataclass
class _Fetch:
    """A running GET: its units are FETCH_UNIT_BYTES units [first_unit, end_unit) of one file."""

    done: trio.Event
    end_unit: int


# (start, end, first unit, fetch): one planned GET whose units are claimed in `_inflight`.
_PlannedFetch = tuple[int, int, int, _Fetch]


def missing_in_base(f: CachedFile, start: int, end: int) -> list[tuple[int, int]]:
    """The ranges of [start, end) that must come from the base object (not present locally)."""
    end = min(end, f.base_size)
    return f.present.missing(start, end) if start < end else []


def to_fetch(f: CachedFile, start: int, end: int) -> list[tuple[int, int]]:
    """`missing_in_base`, widened to the whole base object when that is small and any of it is
    missing (so it arrives in one checked GET)."""
    missing = missing_in_base(f, start, end)
    if missing and f.base_size <= WHOLE_OBJECT_FETCH_BYTES:
        return missing_in_base(f, 0, f.base_size)
    return missing


class RangeFetcher:
    def __init__(
        self,
        store: MeteredStore,
        key_for: Callable[[str], str],
        space: CacheSpace,
        revalidate: Callable[[CachedFile, ObjectInfo, ObjectAttrs], None],
    ) -> None:
        self.store = store
        self.key_for = key_for
        self.space = space
        # Called when the base object changed under a clean file (drops its stale bytes).
        self.revalidate = revalidate
        # (file_id, FETCH_UNIT_BYTES unit) -> the GET fetching it.
        self._inflight: dict[tuple[int, int], _Fetch] = {}
        self._nursery: trio.Nursery | None = None

    def bind_nursery(self, nursery: trio.Nursery) -> None:
        """Readahead fetches run in this nursery (owned and cancelled by the daemon)."""
        self._nursery = nursery

    def block_in_flight(self, file_id: int, block: int) -> bool:
        """Whether a GET is filling part of BLOCK_BYTES block `block` of the file (not evictable)."""
        first_unit = block * UNITS_PER_BLOCK
        return any((file_id, u) in self._inflight for u in range(first_unit, first_unit + UNITS_PER_BLOCK))

    # -- reading ----------------------------------------------------------------------------------

    async def read(self, f: CachedFile, offset: int, length: int, ra: ReadAhead) -> bytes:
        end = min(offset + length, f.size)
        if offset >= end:
            return b""
        if missing_in_base(f, offset, end):
            self.space.counters.misses += 1
        else:
            self.space.counters.hits += 1
        ahead = min(ra.after_read(offset, end), self.space.limit_bytes // 2)
        granule = self._stream_granule(ahead) if ahead > 0 else 0
        if granule and self._nursery is not None:
            # From the read to the window's end, rounded up to the stream's granule (so a sliding
            # window never issues small GETs at its edge); the fill below waits for them.
            ahead_end = -(-(end + ahead) // granule) * granule
            self._start_readahead(f, to_fetch(f, offset, ahead_end), self._nursery)
        await self.fill(f, offset, end, granule)
        end = min(end, f.size)  # a truncate may have run while we fetched
        data = f.pread(offset, max(0, end - offset))
        self.space.touch(f, offset, end)
        return data

    def _start_readahead(self, f: CachedFile, ranges: list[tuple[int, int]], nursery: trio.Nursery) -> None:
        fetches, _ = self._plan_fetches(f, ranges)
        for fs, fe, first_unit, fetch in fetches:
            try:
                nursery.start_soon(self._prefetch_range, f, fs, fe, first_unit, fetch)
            except RuntimeError:  # the nursery is closing: nothing will fetch these
                self._release(f, first_unit, fetch)

    async def warm(self, f: CachedFile) -> None:
        """Brings the whole file into the cache (the control socket's `warm`)."""
        step = 8 * BLOCK_BYTES
        for start in range(0, f.base_size, step):
            await self.fill(f, start, min(start + step, f.base_size), self._chunk_bytes())

    def _chunk_bytes(self) -> int:
        """Largest range one GET fetches: SEQ_FETCH_BYTES, less for a small cache."""
        limit_bytes = self.space.limit_bytes
        return max(FETCH_UNIT_BYTES, min(SEQ_FETCH_BYTES, limit_bytes // 8) // FETCH_UNIT_BYTES * FETCH_UNIT_BYTES)

    def _stream_granule(self, ahead: int) -> int:
        """What a sequential read's fetches are aligned to: its window rounded up to a power of
        two, from FETCH_UNIT_BYTES to one chunk. A young run (the window grows with it) fetches
        about what it reads; an established stream fetches whole chunks."""
        chunk = self._chunk_bytes()
        granule = FETCH_UNIT_BYTES
        while granule < ahead and granule < chunk:
            granule *= 2
        return min(granule, chunk)

    def _fill_ranges(self, f: CachedFile, start: int, end: int, granule: int) -> list[tuple[int, int]]:
        """The missing ranges to fetch so [start, end) becomes present: for a sequential read
        (`granule` > 0), forward to the next granule boundary; otherwise just [start, end)
        rounded out to FETCH_UNIT_BYTES."""
        if not missing_in_base(f, start, end):
            return []
        if granule:
            return to_fetch(f, start, -(-end // granule) * granule)
        lo = start // FETCH_UNIT_BYTES * FETCH_UNIT_BYTES
        hi = -(-end // FETCH_UNIT_BYTES) * FETCH_UNIT_BYTES
        return to_fetch(f, lo, hi)

    # -- fetching ---------------------------------------------------------------------------------

    async def fill(self, f: CachedFile, start: int, end: int, granule: int = 0) -> None:
        """Makes [start, end) present (fetching missing ranges from the base object in parallel,
        and waiting for fetches of them already running)."""
        for _ in range(MAX_FILL_ATTEMPTS):
            ranges = self._fill_ranges(f, start, end, granule)
            if not ranges:
                return
            fetches, waits = self._plan_fetches(f, ranges)
            try:
                if len(fetches) == 1 and not waits:
                    await self._fetch_range(f, *fetches[0])
                else:
                    async with trio.open_nursery() as nursery:
                        for fetch in fetches:
                            nursery.start_soon(self._fetch_range, f, *fetch)
                        for event in waits:
                            nursery.start_soon(event.wait)
            except PreconditionFailed as err:
                if f.dirty:
                    raise CacheConflict(f"{f.path} changed in S3 while it has local changes") from err
                info = await self.store.head(f.base_key or self.key_for(f.path))
                self.revalidate(f, info, f.attrs)
        if missing_in_base(f, start, end):
            raise CacheConflict(f"{f.path}: could not keep [{start}, {end}) cached (cache too small?)")

    def _plan_fetches(
        self, f: CachedFile, ranges: list[tuple[int, int]]
    ) -> tuple[list[_PlannedFetch], list[trio.Event]]:
        """Splits missing `ranges` into GETs (start, end, first unit, fetch) of at most one chunk
        (never crossing a chunk boundary), skipping the FETCH_UNIT_BYTES units a running fetch
        already covers (returned as events to wait for). The units of each planned GET are claimed
        in `_inflight` right away (before any await), so concurrent readers never fetch the same
        bytes twice; whoever runs the GET must `_release` them."""
        chunk = self._chunk_bytes()
        fetches: list[_PlannedFetch] = []
        waits: dict[int, trio.Event] = {}
        for gs, ge in ranges:
            self._plan_range(f.file_id, gs, ge, chunk, fetches, waits)
        for _, _, first_unit, fetch in fetches:
            for unit in range(first_unit, fetch.end_unit):
                self._inflight[(f.file_id, unit)] = fetch
        return fetches, list(waits.values())

    def _plan_range(
        self, file_id: int, gs: int, ge: int, chunk: int, fetches: list[_PlannedFetch], waits: dict[int, trio.Event]
    ) -> None:
        """`_plan_fetches` for one missing range [gs, ge): appends to `fetches` and `waits`."""
        run_start = run_unit = -1
        pos = gs
        unit = gs // FETCH_UNIT_BYTES
        last_unit = (ge - 1) // FETCH_UNIT_BYTES
        while unit <= last_unit:
            us = max(gs, unit * FETCH_UNIT_BYTES)
            running = self._inflight.get((file_id, unit))
            if run_unit >= 0 and (running is not None or us % chunk == 0):
                fetches.append((run_start, pos, run_unit, _Fetch(trio.Event(), unit)))
                run_unit = -1
            if running is not None:
                waits[id(running.done)] = running.done
                unit = max(unit + 1, running.end_unit)  # its units are contiguous: skip them
                continue
            if run_unit < 0:
                run_start, run_unit = us, unit
            pos = min(ge, (unit + 1) * FETCH_UNIT_BYTES)
            unit += 1
        if run_unit >= 0:
            fetches.append((run_start, pos, run_unit, _Fetch(trio.Event(), last_unit + 1)))

    def _release(self, f: CachedFile, first_unit: int, fetch: _Fetch) -> None:
        for unit in range(first_unit, fetch.end_unit):
            slot = (f.file_id, unit)
            if self._inflight.get(slot) is fetch:
                del self._inflight[slot]
        fetch.done.set()

    async def _prefetch_range(self, f: CachedFile, start: int, end: int, first_unit: int, fetch: _Fetch) -> None:
        try:
            await self._fetch_range(f, start, end, first_unit, fetch)
        except Exception as err:  # readahead is a hint; the real read retries and reports
            log.debug("readahead of %s [%d, %d) failed: %s", f.path, start, end, err)

    async def _fetch_range(self, f: CachedFile, start: int, end: int, first_unit: int, fetch: _Fetch) -> None:
        """One ranged GET of [start, end) of the base object; writes the parts still missing."""
        try:
            end = min(end, f.base_size)
            if end <= start or f.base_key is None or not missing_in_base(f, start, end):
                return
            base_key, base_etag = f.base_key, f.base_etag
            if start == 0 and end == f.base_size:
                data = await self.store.get_object(base_key, if_match=base_etag)
            else:
                data = await self.store.get_range(base_key, start, end - start, if_match=base_etag)
            if f.deleted or f.base_key != base_key or f.base_etag != base_etag:
                return  # the caller's loop looks again
            # Written on a worker thread (a chunk is megabytes: copying it into the page cache on
            # the trio thread stalled every other request); writers wait on the lock meanwhile,
            # so a fetch never lands on bytes a write put there after the check.
            async with f.write_lock:
                gaps = missing_in_base(f, start, start + len(data))
                await trio.to_thread.run_sync(_write_gaps, f, data, start, gaps)
                if f.deleted or f.base_key != base_key or f.base_etag != base_etag:
                    return  # replaced meanwhile: the bytes are not marked present
                self.space.make_room(len(data))  # no await from here until they are counted
                for gs, ge in gaps:
                    self.space.add_present(f, gs, ge)
            self.space.touch(f, start, start + len(data))
        finally:
            self._release(f, first_unit, fetch)


def _write_gaps(f: CachedFile, data: bytes, start: int, gaps: list[tuple[int, int]]) -> None:
    view = memoryview(data)  # slices without copying
    for gs, ge in gaps:
        f.pwrite(view[gs - start : ge - start], gs)
