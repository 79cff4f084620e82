"""`FileCache`: the local tier of one volume. It owns every `CachedFile`, fills missing ranges from
S3 (small ranges around random reads, large chunks ahead of sequential ones), keeps the byte limit
by evicting clean blocks least recently used first, never evicts dirty data, makes writers wait
when dirty data fills the cache, journals what close() acknowledges, and builds the uploads (whole
file, or compose when only part of a large file changed) that the `Uploader` runs. Uploads read
the cache file itself through a pinned file descriptor (no snapshot copy); a write during the
upload first gives the file a private copy, so an object is never a mix of two versions."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.journal import DirtyRecord, Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.range_map import RangeMap
from razorfs.cache.readahead import ReadAhead
from razorfs.store.base import CopyRange, FileRange, ObjectInfo
from razorfs.store.errors import PreconditionFailed
from razorfs.store.object_attrs import ObjectAttrs, metadata_from_attrs

log = logging.getLogger(__name__)

# Clean data is kept in LRU order and evicted per block.
BLOCK_BYTES = 1024 * 1024
# A non-sequential read fetches the units of this size it touches (a 4 KiB random read costs at
# most 8 KiB from S3); running fetches are tracked per unit.
FETCH_UNIT_BYTES = 8 * 1024
UNITS_PER_BLOCK = BLOCK_BYTES // FETCH_UNIT_BYTES
# A sequential stream fetches chunks of this size (aligned), several in flight ahead of the reader.
SEQ_FETCH_BYTES = 8 * 1024 * 1024
# Files at least this large whose written ranges cover less than half of them are uploaded with
# compose: unchanged ranges are copied server-side instead of re-uploaded.
COMPOSE_MIN_BYTES = 32 * 1024 * 1024
# Compose segments are aligned to this, so every copied or uploaded part but the last is >= 5 MiB.
COMPOSE_SEGMENT_BYTES = 8 * 1024 * 1024
MAX_FILL_ATTEMPTS = 8
# Files up to this size are uploaded from memory (read under the write lock): one PUT, no file.
SMALL_UPLOAD_BYTES = 1024 * 1024
# Buffers at least this large (upload parts, fetched chunks) get their own mmap, unmapped when
# freed. glibc's default threshold grows to the largest freed buffer, after which parallel 8 MiB
# part buffers are carved from per-thread arenas that keep the memory (measured: +32 MiB RSS that
# stays after a multipart upload, which malloc_trim does not give back).
MMAP_THRESHOLD_BYTES = 1024 * 1024
# A file up to this size, whole in the cache, is journaled with its content in the row: its close
# then costs one WAL fsync (shared by the round), not also an fsync of its cache file.
INLINE_MAX_BYTES = 64 * 1024
# A sync round with more unsynced files than this syncs the cache's filesystem in one call.
SYNCFS_ABOVE_FILES = 8
# An upload reads the cache file through /proc/self/fd/N: the open inode, even after a write
# replaced the file at its path with a private copy.
_PROC_FD_DIR = Path("/proc/self/fd")


@dataclass
class _SyncRound:
    """A sync round that closers wait for; `error` is set when it failed."""

    done: trio.Event = field(default_factory=trio.Event)
    error: OSError | None = None


class CacheConflict(Exception):
    """The object changed in S3 while this node holds unsaved changes to missing ranges of it."""


@dataclass
class _Fetch:
    """A running GET: its units are FETCH_UNIT_BYTES units [first_unit, end_unit) of one file."""

    done: trio.Event
    end_unit: int


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    evicted_bytes: int = 0


class FileCache:
    def __init__(
        self,
        cache_dir: Path,
        store: MeteredStore,
        journal: Journal,
        limit_bytes: int,
        key_for: Callable[[str], str],
        metadata_ttl_s: float,
    ) -> None:
        self.cache_dir = cache_dir
        self.data_dir = cache_dir / "data"
        self.upload_dir = cache_dir / "uploads"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir = cache_dir / "quarantine"
        # Snapshots of a crashed daemon are useless: the journal rows point at the data files.
        shutil.rmtree(self.upload_dir, ignore_errors=True)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.pin_uploads = _PROC_FD_DIR.is_dir()
        _bound_large_allocations()
        self.store = store
        self.journal = journal
        self.limit_bytes = limit_bytes
        self.key_for = key_for
        self.metadata_ttl_s = metadata_ttl_s
        self.counters = CacheCounters()
        self.cached_bytes = 0
        self.uploading_bytes = 0
        self._files: dict[str, CachedFile] = {}
        self._by_id: dict[int, CachedFile] = {}
        self._lru: OrderedDict[tuple[int, int], None] = OrderedDict()
        # (file_id, FETCH_UNIT_BYTES unit) -> the GET fetching it.
        self._inflight: dict[tuple[int, int], _Fetch] = {}
        # Files whose journal row is not known to be on the disk (with their cache file): the next
        # `sync_acknowledged` round fsyncs them. `_removed_unsynced`: rows were deleted since.
        self._unsynced: dict[int, CachedFile] = {}
        # Files whose current row carries their content (`INLINE_MAX_BYTES`): no cache-file fsync.
        self._inline: set[int] = set()
        # Group commit: closers wait for the next round (`wait_power_safe`); the rows journaled
        # while one round runs are synced together by the next. `_syncing`: the running round's.
        self._next_round = _SyncRound()
        self._syncing: set[int] = set()
        self.sync_wanted = trio.Event()
        self._removed_unsynced = False
        self._next_file_id = journal.max_file_id() + 1
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        # Set by the uploader: called with a file whose acknowledged version needs uploading.
        self.on_needs_upload: Callable[[CachedFile], None] = lambda f: None

    # -- lifecycle --------------------------------------------------------------------------------

    def bind_nursery(self, nursery: trio.Nursery) -> None:
        """Readahead fetches run in this nursery (owned and cancelled by the daemon)."""
        self._nursery = nursery

    def replay_journal(self) -> list[CachedFile]:
        """Rebuilds the dirty files a previous daemon acknowledged; drops clean leftovers."""
        files: list[CachedFile] = []
        keep: set[str] = set()
        for rec in self.journal.dirty_records():
            # A row with its content inline is whole whenever it exists (SQLite commits are atomic).
            if not rec.synced and rec.boot_id != self.journal.boot_id and rec.inline_data is None:
                self._quarantine(rec)
                continue
            if rec.inline_data is not None:
                _rewrite_file(self.data_dir / str(rec.file_id), rec.inline_data)
                self._inline.add(rec.file_id)
            f = CachedFile(
                file_id=rec.file_id,
                path=rec.path,
                data_path=self.data_dir / str(rec.file_id),
                size=rec.size,
                attrs=ObjectAttrs(rec.mode, rec.uid, rec.gid, rec.mtime, rec.atime, rec.ctime),
                base_key=rec.base_key,
                base_etag=rec.base_etag,
                base_size=rec.base_size,
                present=RangeMap.from_list(rec.present),
                written=RangeMap.from_list(rec.written),
                version=1,
                journaled_version=1,
                uploaded_version=0,
                shrunk_to=rec.size,
            )
            self._adopt(f)
            if not rec.synced:
                self._unsynced[f.file_id] = f
            keep.add(f.data_path.name)
            files.append(f)
        for leftover in self.data_dir.iterdir():
            if leftover.name not in keep:
                leftover.unlink(missing_ok=True)
        return files

    def _quarantine(self, rec: DirtyRecord) -> None:
        """A row written in an earlier boot and never synced: the machine lost power (or crashed)
        before its cache file was known to be on the disk, so the bytes may be torn. They are kept
        for a human under quarantine/ instead of being uploaded over the object."""
        self.quarantine_dir.mkdir(exist_ok=True)
        target = self.quarantine_dir / f"{rec.file_id}.{rec.path.replace('/', '%')}"[:200]
        source = self.data_dir / str(rec.file_id)
        if source.exists():
            os.replace(source, target)
        log.error(
            "%s: changes acknowledged in an earlier boot were not yet synced to the disk when it ended; "
            "not uploading them (cache file kept as %s)",
            rec.path,
            target,
        )
        self.journal.remove(rec.file_id)

    def _adopt(self, f: CachedFile) -> None:
        self._files[f.path] = f
        self._by_id[f.file_id] = f
        self.cached_bytes += f.present.total()

    # -- lookup -----------------------------------------------------------------------------------

    def get(self, path: str) -> CachedFile | None:
        return self._files.get(path)

    def files_under(self, dir_path: str) -> list[CachedFile]:
        prefix = dir_path + "/" if dir_path else ""
        # list() first: the metrics thread reads these while the trio thread changes the dict.
        return [f for p, f in list(self._files.items()) if p.startswith(prefix)]

    def children_of(self, dir_path: str) -> list[CachedFile]:
        """Cached files directly in `dir_path` (new files not in S3 yet show up through this)."""
        prefix = dir_path + "/" if dir_path else ""
        return [f for p, f in self._files.items() if p.startswith(prefix) and "/" not in p[len(prefix) :]]

    def dirty_files(self) -> list[CachedFile]:
        return [f for f in list(self._files.values()) if f.dirty]

    @property
    def dirty_bytes(self) -> int:
        return sum(max(f.written.total(), 1) for f in self.dirty_files())

    # -- creating entries -------------------------------------------------------------------------

    def _new_file(self, path: str, size: int, attrs: ObjectAttrs) -> CachedFile:
        file_id = self._next_file_id
        self._next_file_id += 1
        f = CachedFile(file_id=file_id, path=path, data_path=self.data_dir / str(file_id), size=size, attrs=attrs)
        f.truncate_data(size)
        self._adopt(f)
        return f

    def create(self, path: str, attrs: ObjectAttrs) -> CachedFile:
        """A new empty file (replacing any cached one at `path`); dirty until uploaded."""
        old = self._files.get(path)
        if old is not None:
            self.forget(old)
        f = self._new_file(path, 0, attrs)
        f.version = 1
        self._notify()
        return f

    def open_object(self, path: str, info: ObjectInfo, attrs: ObjectAttrs) -> CachedFile:
        """The cached file for an S3 object, created clean (nothing present yet) if needed."""
        f = self._files.get(path)
        if f is not None:
            return f
        f = self._new_file(path, info.size, attrs)
        f.base_key, f.base_etag, f.base_size = info.key, info.etag, info.size
        f.shrunk_to = info.size
        return f

    def needs_revalidation(self, f: CachedFile) -> bool:
        return not f.dirty and time.monotonic() - f.validated_at >= self.metadata_ttl_s

    def revalidate(self, f: CachedFile, info: ObjectInfo, attrs: ObjectAttrs) -> None:
        """Close-to-open: `info` is a fresh HEAD; a changed ETag drops the stale cached bytes."""
        f.validated_at = time.monotonic()
        if not attrs.stored_equal(f.attrs):
            # Only a real change: the sub-second mtime this node knows must not turn into the
            # whole seconds S3 keeps (a new mtime makes the kernel drop the file's cached pages).
            f.attrs = attrs
        if f.dirty or (info.etag == f.base_etag and info.key == f.base_key):
            return
        log.info("%s changed in S3 (ETag %s -> %s): dropping cached data", f.path, f.base_etag, info.etag)
        self._drop_present(f)
        f.truncate_data(info.size)
        f.size = f.base_size = f.shrunk_to = info.size
        f.base_key, f.base_etag = info.key, info.etag
        self._notify()

    def forget(self, f: CachedFile) -> None:
        """Drops a file's local state entirely (unlink, or replaced by a rename)."""
        f.deleted = True
        f.base_size = 0  # an open unlinked file reads what it has locally
        if self._files.get(f.path) is f:
            del self._files[f.path]
        self._by_id.pop(f.file_id, None)
        self._drop_present(f)
        if f.open_handles == 0:  # an open unlinked file keeps its bytes until release
            f.data_path.unlink(missing_ok=True)
        self._unjournal(f)
        self._notify()

    def move(self, f: CachedFile, new_path: str) -> None:
        """Re-keys a cached file after its object moved (the caller copied the S3 side)."""
        if self._files.get(f.path) is f:
            del self._files[f.path]
        f.path = new_path
        self._files[new_path] = f
        if f.journaled_version > f.uploaded_version:
            self._journal(f)

    def _journal(self, f: CachedFile) -> None:
        """Writes the file's journal row (durable against a process crash once this returns)."""
        inline = f.pread(0, f.size) if f.size <= INLINE_MAX_BYTES and f.present.contains(0, f.size) else None
        self.journal.record_dirty(f.dirty_record(inline))
        self._unsynced[f.file_id] = f
        if inline is None:
            self._inline.discard(f.file_id)
        else:
            self._inline.add(f.file_id)

    def _unjournal(self, f: CachedFile) -> None:
        self.journal.remove(f.file_id)
        self._unsynced.pop(f.file_id, None)
        self._inline.discard(f.file_id)
        self._removed_unsynced = True

    def _drop_present(self, f: CachedFile) -> None:
        self.cached_bytes -= f.present.total()
        f.present = RangeMap()
        f.written = RangeMap()

    # -- reading ----------------------------------------------------------------------------------

    def _missing_in_base(self, f: CachedFile, start: int, end: int) -> list[tuple[int, int]]:
        end = min(end, f.base_size)
        return f.present.missing(start, end) if start < end else []

    async def read(self, f: CachedFile, offset: int, length: int, ra: ReadAhead) -> bytes:
        end = min(offset + length, f.size)
        if offset >= end:
            return b""
        missing = self._missing_in_base(f, offset, end)
        if missing:
            self.counters.misses += 1
        else:
            self.counters.hits += 1
        ahead = min(ra.after_read(offset, end), self.limit_bytes // 2)
        granule = self._stream_granule(ahead) if ahead > 0 else 0
        if granule and self._nursery is not None:
            # From the read to the window's end, rounded up to the stream's granule (so a sliding
            # window never issues small GETs at its edge); the fill below waits for them.
            ahead_end = -(-(end + ahead) // granule) * granule
            fetches, _ = self._plan_fetches(f, self._missing_in_base(f, offset, ahead_end))
            for fs, fe, first_unit, fetch in fetches:
                try:
                    self._nursery.start_soon(self._prefetch_range, f, fs, fe, first_unit, fetch)
                except RuntimeError:  # the nursery is closing: nothing will fetch these
                    self._release(f, first_unit, fetch)
        await self._fill(f, offset, end, granule)
        end = min(end, f.size)  # a truncate may have run while we fetched
        data = f.pread(offset, max(0, end - offset))
        self._touch(f, offset, end)
        return data

    async def warm(self, f: CachedFile) -> None:
        """Brings the whole file into the cache (the control socket's `warm`)."""
        step = 8 * BLOCK_BYTES
        for start in range(0, f.base_size, step):
            await self._fill(f, start, min(start + step, f.base_size), self._chunk_bytes())

    def _chunk_bytes(self) -> int:
        """Largest range one GET fetches: SEQ_FETCH_BYTES, less for a small cache."""
        return max(FETCH_UNIT_BYTES, min(SEQ_FETCH_BYTES, self.limit_bytes // 8) // FETCH_UNIT_BYTES * FETCH_UNIT_BYTES)

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
        if not self._missing_in_base(f, start, end):
            return []
        if granule:
            return self._missing_in_base(f, start, -(-end // granule) * granule)
        lo = start // FETCH_UNIT_BYTES * FETCH_UNIT_BYTES
        hi = -(-end // FETCH_UNIT_BYTES) * FETCH_UNIT_BYTES
        return self._missing_in_base(f, lo, hi)

    async def _fill(self, f: CachedFile, start: int, end: int, granule: int = 0) -> None:
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
        if self._missing_in_base(f, start, end):
            raise CacheConflict(f"{f.path}: could not keep [{start}, {end}) cached (cache too small?)")

    def _plan_fetches(
        self, f: CachedFile, ranges: list[tuple[int, int]]
    ) -> tuple[list[tuple[int, int, int, _Fetch]], list[trio.Event]]:
        """Splits missing `ranges` into GETs (start, end, first unit, fetch) of at most one chunk
        (never crossing a chunk boundary), skipping the FETCH_UNIT_BYTES units a running fetch
        already covers (returned as events to wait for). The units of each planned GET are claimed
        in `_inflight` right away (before any await), so concurrent readers never fetch the same
        bytes twice; whoever runs the GET must `_release` them."""
        chunk = self._chunk_bytes()
        fetches: list[tuple[int, int, int, _Fetch]] = []
        waits: dict[int, trio.Event] = {}
        for gs, ge in ranges:
            run_start = run_unit = -1
            pos = gs
            unit = gs // FETCH_UNIT_BYTES
            last_unit = (ge - 1) // FETCH_UNIT_BYTES
            while unit <= last_unit:
                us = max(gs, unit * FETCH_UNIT_BYTES)
                running = self._inflight.get((f.file_id, unit))
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
        for _, _, first_unit, fetch in fetches:
            for unit in range(first_unit, fetch.end_unit):
                self._inflight[(f.file_id, unit)] = fetch
        return fetches, list(waits.values())

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
            if end <= start or f.base_key is None or not self._missing_in_base(f, start, end):
                return
            base_key, base_etag = f.base_key, f.base_etag
            data = await self.store.get_range(base_key, start, end - start, if_match=base_etag)
            if f.deleted or f.base_key != base_key or f.base_etag != base_etag:
                return  # the caller's loop looks again
            # Written on a worker thread (a chunk is megabytes: copying it into the page cache on
            # the trio thread stalled every other request); writers wait on the lock meanwhile,
            # so a fetch never lands on bytes a write put there after the check.
            async with f.write_lock:
                gaps = self._missing_in_base(f, start, start + len(data))
                await trio.to_thread.run_sync(_write_gaps, f, data, start, gaps)
                if f.deleted or f.base_key != base_key or f.base_etag != base_etag:
                    return  # replaced meanwhile: the bytes are not marked present
                self._make_room(len(data))  # no await from here until they are counted
                for gs, ge in gaps:
                    self._add_present(f, gs, ge)
            self._touch(f, start, start + len(data))
        finally:
            self._release(f, first_unit, fetch)

    def _add_present(self, f: CachedFile, start: int, end: int) -> None:
        before = f.present.total()
        f.present.add(start, end)
        self.cached_bytes += f.present.total() - before

    def _touch(self, f: CachedFile, start: int, end: int) -> None:
        if end <= start:
            return
        for b in range(start // BLOCK_BYTES, (end - 1) // BLOCK_BYTES + 1):
            self._lru[(f.file_id, b)] = None
            self._lru.move_to_end((f.file_id, b))

    # -- eviction and back-pressure --------------------------------------------------------------

    def _make_room(self, incoming: int) -> None:
        """Evicts clean blocks, least recently used first, until `incoming` more bytes fit."""
        skipped: list[tuple[int, int]] = []
        while self.cached_bytes + incoming > self.limit_bytes and self._lru:
            slot, _ = self._lru.popitem(last=False)
            f = self._by_id.get(slot[0])
            if f is None:
                continue
            start = slot[1] * BLOCK_BYTES
            end = start + BLOCK_BYTES
            first_unit = slot[1] * UNITS_PER_BLOCK
            if f.dirty or any((slot[0], u) in self._inflight for u in range(first_unit, first_unit + UNITS_PER_BLOCK)):
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
            self._make_room(incoming)
            if self.cached_bytes + incoming <= self.limit_bytes:
                return
            if not any(g is not f and g.needs_upload for g in self._files.values()) and self.uploading_bytes == 0:
                return
            await self.wait_changed()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    # -- writing ----------------------------------------------------------------------------------

    async def write(self, f: CachedFile, offset: int, data: bytes) -> int:
        await self.wait_for_room(f, len(data))
        async with f.write_lock:
            if f.deleted:
                # Unlinked while open: keep accepting writes like a local file would, but for nothing.
                return len(data)
            end = offset + len(data)
            if f.upload_pinned:
                await self._detach_from_upload(f)
            f.pwrite(data, offset)
            if offset > f.size:
                self._add_present(f, f.size, offset)  # the hole reads as zeros
            self._add_present(f, offset, end)
            f.written.add(offset, end)
            f.size = max(f.size, end)
            f.version += 1
            self._touch(f, offset, end)
        return len(data)

    async def truncate(self, f: CachedFile, size: int) -> None:
        async with f.write_lock:
            if size == f.size:
                return
            if f.upload_pinned:
                await self._detach_from_upload(f)
            f.truncate_data(size)
            if size < f.size:
                before = f.present.total()
                f.present.truncate(size)
                self.cached_bytes -= before - f.present.total()
                f.written.truncate(size)
                f.base_size = min(f.base_size, size)
                f.shrunk_to = min(f.shrunk_to, size)
            else:
                self._add_present(f, f.size, size)
                f.written.add(f.size, size)
            f.size = size
            f.version += 1

    def set_attrs(self, f: CachedFile, attrs: ObjectAttrs) -> None:
        f.attrs = attrs
        f.version += 1

    async def commit(self, f: CachedFile) -> None:
        """The file's state is journaled and the upload queued. The bytes are in the page cache
        already (written with pwrite) and the row in SQLite's WAL, so a killed daemon loses
        nothing; `wait_power_safe` (which close() awaits next) makes them power-safe. Returns at
        once when nothing changed since the last commit (flush and release both commit)."""
        if f.deleted or f.version == f.journaled_version or not f.dirty:
            return
        self._journal(f)
        f.journaled_version = f.version
        self.on_needs_upload(f)
        self._notify()

    async def wait_power_safe(self, f: CachedFile) -> None:
        """close() durability against power loss, as DESIGN promises: returns once the file's
        journaled state and its cache file are fsync'd (or it is uploaded). Concurrent closers
        share one round; raises OSError when the local disk failed the round."""
        if f.deleted or not f.needs_upload or (f.file_id not in self._unsynced and f.file_id not in self._syncing):
            return
        round_ = self._next_round
        self.sync_wanted.set()
        await round_.done.wait()
        if round_.error is not None:
            raise round_.error

    async def sync_round(self) -> int:
        """Runs the round that `wait_power_safe` callers are waiting for (the uploader's sync loop
        calls this, at once when asked, else every LOCAL_SYNC_INTERVAL_S)."""
        round_, self._next_round = self._next_round, _SyncRound()
        self.sync_wanted = trio.Event()
        self._syncing = set(self._unsynced)
        try:
            return await self.sync_acknowledged()
        except (OSError, sqlite3.Error) as err:
            round_.error = err if isinstance(err, OSError) else OSError(errno.EIO, f"cache journal: {err}")
            raise
        except BaseException:
            round_.error = OSError(errno.EIO, "the local sync round was interrupted")
            raise
        finally:
            self._syncing = set()
            round_.done.set()

    async def sync_acknowledged(self) -> int:
        """One round of local durability against power loss: fsyncs the cache files of journaled
        rows not synced yet, marks those rows synced, then fsyncs the journal's WAL (once for the
        whole round; it also makes removed rows stay removed). Returns the rows marked."""
        if not self._unsynced and not self._removed_unsynced:
            return 0
        pending = list(self._unsynced.values())
        self._unsynced.clear()
        self._removed_unsynced = False
        paths = [f.data_path for f in pending if f.needs_upload and f.file_id not in self._inline]
        synced: list[int] = []
        try:
            if paths:
                await trio.to_thread.run_sync(_fsync_paths, paths)
            # A file back in _unsynced was journaled again (or detached to a new inode) meanwhile:
            # its row is left for the next round.
            synced = [f.file_id for f in pending if f.needs_upload and f.file_id not in self._unsynced]
            self.journal.mark_synced(synced)
            await trio.to_thread.run_sync(self.journal.sync_wal)
        except BaseException:  # the next round does it all again
            for file_id in synced:  # marked, but the WAL sync that would make the mark true failed
                self.journal.mark_unsynced(file_id)
            for f in pending:
                self._unsynced.setdefault(f.file_id, f)
            self._removed_unsynced = True
            raise
        return len(synced)

    async def _detach_from_upload(self, f: CachedFile) -> None:
        """Before a change to a file an upload is reading (caller holds the write lock): the file
        gets a private copy at its path, the upload keeps reading the old inode through its fd.
        Costs what the snapshot before every upload used to cost, but only when a writer races an
        upload."""
        before = f.present.copy()
        tmp = self.data_dir / f"{f.file_id}.detached"
        await trio.to_thread.run_sync(_copy_ranges, f.data_path, tmp, list(before), None)
        # Ranges a readahead fetch filled while we copied (no await from here to the rename).
        added = [gap for s, e in f.present for gap in before.missing(s, e)]
        _copy_ranges(f.data_path, tmp, added, None, into_existing=True)
        os.replace(tmp, f.data_path)
        f.upload_pinned = False
        # The new inode is not on the disk yet: until the next sync round, the row is not power-safe.
        if f.file_id in self._unsynced or f.needs_upload:
            self.journal.mark_unsynced(f.file_id)
            self._unsynced[f.file_id] = f
        log.info("%s changed while being uploaded: gave it a private copy", f.path)

    # -- uploading --------------------------------------------------------------------------------

    def _compose_plan(self, f: CachedFile) -> list[tuple[int, int, bool]] | None:
        """(start, end, copy) segments when compose pays off, else None (upload the whole file)."""
        if f.base_key is None or f.size < COMPOSE_MIN_BYTES or f.written.total() * 2 > f.size:
            return None
        plan: list[tuple[int, int, bool]] = []
        for start in range(0, f.size, COMPOSE_SEGMENT_BYTES):
            end = min(start + COMPOSE_SEGMENT_BYTES, f.size)
            copy = end <= f.base_size and not f.written.overlaps(start, end)
            if plan and plan[-1][2] == copy:
                plan[-1] = (plan[-1][0], end, copy)
            else:
                plan.append((start, end, copy))
        if not any(copy for _, _, copy in plan):
            return None
        return plan

    async def upload(self, f: CachedFile) -> None:
        """Uploads the file's current content (caller holds `f.upload_lock`). What is uploaded is
        fixed under the write lock: a small file is read into memory; a larger one is read through
        a file descriptor pinned to the cache file's inode, and a write during the upload gives the
        file a private copy first (`_detach_from_upload`), so the object is never a mix of two
        versions; writes after that point keep the file dirty for the next round."""
        key = self.key_for(f.path)
        body: bytes | None = None
        pinned_fd = -1
        snapshot: Path | None = None
        for _ in range(MAX_FILL_ATTEMPTS):
            plan = self._compose_plan(f)
            local = [(s, e) for s, e, copy in plan if not copy] if plan else [(0, f.size)]
            for s, e in local:
                await self._fill(f, s, e)
            async with f.write_lock:
                if f.deleted:
                    return
                if self._compose_plan(f) != plan or any(self._missing_in_base(f, s, e) for s, e in local):
                    continue  # changed while we fetched: plan again
                version, size, attrs = f.version, f.size, f.attrs
                base_key, base_etag = f.base_key, f.base_etag
                f.shrunk_to = size
                if plan is None and size <= SMALL_UPLOAD_BYTES:
                    body = f.pread(0, size)
                else:
                    pinned_fd = self._pin(f, size)
                    if pinned_fd < 0:  # no /proc: a snapshot copy, as a plain file
                        snapshot = self.upload_dir / f"{f.file_id}.{f.version}"
                        await trio.to_thread.run_sync(_copy_ranges, f.data_path, snapshot, local, size)
            break
        else:
            raise CacheConflict(f"{f.path}: kept changing while preparing its upload")
        source = snapshot if snapshot is not None else _PROC_FD_DIR / str(pinned_fd)
        metadata = metadata_from_attrs(attrs)
        self.uploading_bytes += size
        try:
            if body is not None:
                info = await self.store.put_bytes(key, body, metadata)
            elif plan is not None:
                assert base_key is not None
                parts: list[CopyRange | FileRange] = [
                    CopyRange(base_key, s, e - s) if copy else FileRange(source, s, e - s) for s, e, copy in plan
                ]
                log.info(
                    "uploading %s with compose (%d bytes reused server-side)",
                    f.path,
                    sum(e - s for s, e, copy in plan if copy),
                )
                info = await self.store.compose(key, parts, metadata)
            else:
                info = await self.store.put_file(key, source, size, metadata)
        finally:
            self.uploading_bytes -= size
            if pinned_fd >= 0:
                f.upload_pinned = False
                os.close(pinned_fd)
            if snapshot is not None:
                snapshot.unlink(missing_ok=True)
        if base_key is not None and base_key != key:
            await self.store.delete(base_key)
        f.base_key, f.base_etag = key, info.etag
        f.base_size = min(size, f.shrunk_to)
        f.uploaded_version = max(f.uploaded_version, version)
        f.validated_at = time.monotonic()
        if not f.dirty:
            f.written = RangeMap()
            self._unjournal(f)
        elif f.journaled_version > f.uploaded_version:
            self._journal(f)
        log.debug("uploaded %s (%d bytes, ETag %s, base was %s)", f.path, size, info.etag, base_etag)
        self._notify()

    def _pin(self, f: CachedFile, size: int) -> int:
        """An fd on the cache file for an upload of its first `size` bytes, or -1 (no /proc, or
        the file's length is not `size`). Until unpinned, changes go to a private copy."""
        if not self.pin_uploads:
            return -1
        fd = os.open(f.data_path, os.O_RDONLY)
        if os.fstat(fd).st_size != size:
            os.close(fd)
            return -1
        f.upload_pinned = True
        return fd


def _write_gaps(f: CachedFile, data: bytes, start: int, gaps: list[tuple[int, int]]) -> None:
    view = memoryview(data)  # slices without copying
    for gs, ge in gaps:
        f.pwrite(view[gs - start : ge - start], gs)


def _copy_ranges(
    source: Path, dest: Path, ranges: list[tuple[int, int]], size: int | None, into_existing: bool = False
) -> None:
    """Copies `ranges` of `source` into `dest` at the same offsets: a new sparse `dest` of `size`
    bytes (the source's size when None), or the existing `dest`. In-kernel (copy_file_range)."""
    src = os.open(source, os.O_RDONLY)
    try:
        out = os.open(dest, os.O_WRONLY if into_existing else os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if not into_existing:
                os.ftruncate(out, os.fstat(src).st_size if size is None else size)
            for start, end in ranges:
                pos = start
                while pos < end:
                    try:
                        n = os.copy_file_range(src, out, end - pos, pos, pos)
                    except OSError:  # not supported here: through user space
                        chunk = os.pread(src, min(end - pos, 4 * 1024 * 1024), pos)
                        n = os.pwrite(out, chunk, pos) if chunk else 0
                    if n == 0:
                        break  # past the sparse source's end: the hole reads as zeros
                    pos += n
        finally:
            os.close(out)
    finally:
        os.close(src)


def _rewrite_file(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, content, 0)
    finally:
        os.close(fd)


def _fsync_paths(paths: list[Path]) -> None:
    """fsync each file; for more than SYNCFS_ABOVE_FILES, one syncfs of their filesystem instead
    (a burst of small files would otherwise cost one ext4 journal commit each, and stall the
    creates of the files that follow)."""
    if len(paths) > SYNCFS_ABOVE_FILES and hasattr(_libc, "syncfs"):
        fd = os.open(paths[0].parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _libc.syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs of {paths[0].parent}: {os.strerror(err)}")
        finally:
            os.close(fd)
        return
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # forgotten meanwhile: its row is gone too
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
_M_MMAP_THRESHOLD = -3


def _bound_large_allocations() -> None:
    """Fixes malloc's mmap threshold at MMAP_THRESHOLD_BYTES for this process (glibc only; the
    daemon's memory is the cache's part buffers, so the cache sets it)."""
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
