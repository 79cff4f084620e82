"""`FileCache`: the local tier of one volume, and the one door the filesystem and the uploader
use. It creates, revalidates, moves and forgets cached files, applies writes and truncates, and
commits what close() acknowledges; the work behind each call is done by the modules the package
docstring lists (registry, space, fetcher, sync_rounds, upload_builder)."""

from __future__ import annotations

import ctypes
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import trio

from razorfs.cache.cached_file import CachedFile, preserved_name
from razorfs.cache.fetcher import RangeFetcher
from razorfs.cache.journal import DirtyRecord, Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.range_map import RangeMap
from razorfs.cache.readahead import ReadAhead
from razorfs.cache.registry import FileRegistry
from razorfs.cache.space import CacheCounters, CacheSpace
from razorfs.cache.sync_rounds import SyncRounds, fsync_directory
from razorfs.cache.upload_builder import UploadBuilder
from razorfs.store.base import ObjectInfo
from razorfs.store.errors import ObjectNotFound, StoreError
from razorfs.store.object_attrs import ObjectAttrs

log = logging.getLogger(__name__)

# Buffers at least this large (upload parts, fetched chunks) get their own mmap, unmapped when
# freed. glibc's default threshold grows to the largest freed buffer, after which parallel 8 MiB
# part buffers are carved from per-thread arenas that keep the memory (measured: +32 MiB RSS that
# stays after a multipart upload, which malloc_trim does not give back).
MMAP_THRESHOLD_BYTES = 1024 * 1024
# A rename whose new object is in S3 retries deleting the old one this often (at most), until done.
MOVE_DELETE_RETRY_MAX_S = 5.0


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
        _bound_large_allocations()
        self.store = store
        self.journal = journal
        self.key_for = key_for
        self.metadata_ttl_s = metadata_ttl_s
        self.counters = CacheCounters()
        self.registry = FileRegistry(journal.max_file_id() + 1)
        self.space = CacheSpace(self.registry, limit_bytes, self.counters)
        self.fetcher = RangeFetcher(store, key_for, self.space, self.revalidate)
        self.space.block_in_flight = self.fetcher.block_in_flight
        self.rounds = SyncRounds(journal)
        self.uploads = UploadBuilder(
            store, key_for, self.registry, self.space, self.fetcher, self.rounds, self.upload_dir
        )
        # Set by the uploader: called with a file whose acknowledged version needs uploading.
        self.on_needs_upload: Callable[[CachedFile], None] = lambda f: None
        # When close(), fsync() or a flush last committed a file (trio clock): the uploader gives way
        # to a burst of closes.
        self.last_commit_at = -math.inf

    # -- lifecycle --------------------------------------------------------------------------------

    def bind_nursery(self, nursery: trio.Nursery) -> None:
        """Readahead fetches run in this nursery (owned and cancelled by the daemon)."""
        self.fetcher.bind_nursery(nursery)

    def replay_journal(self) -> list[CachedFile]:
        """Rebuilds the dirty files a previous daemon acknowledged; drops clean leftovers. A row
        whose content was preserved (`<file_id>.acked-<version>` of the row's version: a program
        was changing the file when the daemon died, before its close()) gets that content back at
        the cache file, and the unacknowledged changes are dropped; a preserved file of another
        version (its row replaced or removed meanwhile) is a leftover."""
        files: list[CachedFile] = []
        keep: set[str] = set()
        restored = False
        for rec in self.journal.dirty_records():
            preserved = self.data_dir / preserved_name(rec.file_id, _row_version(rec))
            if rec.inline_data is None and preserved.exists():
                os.replace(preserved, self.data_dir / str(rec.file_id))
                restored = True
            # A row with its content inline is whole whenever it exists (SQLite commits are atomic).
            if not rec.synced and rec.boot_id != self.journal.boot_id and rec.inline_data is None:
                self._quarantine(rec)
                continue
            f = self._replayed_file(rec)
            keep.add(f.data_path.name)
            files.append(f)
        if restored:  # else a power loss could bring back both names (harmless) or neither
            fsync_directory(self.data_dir)
        for leftover in self.data_dir.iterdir():
            if leftover.name not in keep:
                leftover.unlink(missing_ok=True)
        return files

    def _replayed_file(self, rec: DirtyRecord) -> CachedFile:
        if rec.inline_data is not None:
            _rewrite_file(self.data_dir / str(rec.file_id), rec.inline_data)
        version = _row_version(rec)
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
            version=version,
            journaled_version=version,
            uploaded_version=0,
            shrunk_to=rec.size,
            row_version=version,
        )
        self._adopt(f)
        self.rounds.adopt_replayed(f, inline=rec.inline_data is not None, synced=rec.synced)
        return f

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
        self.registry.add(f)
        self.space.count_present(f)

    # -- lookup and accounting --------------------------------------------------------------------

    def get(self, path: str) -> CachedFile | None:
        return self.registry.get(path)

    def files_under(self, dir_path: str) -> list[CachedFile]:
        return self.registry.files_under(dir_path)

    def children_of(self, dir_path: str) -> list[CachedFile]:
        """Cached files directly in `dir_path` (new files not in S3 yet show up through this)."""
        return self.registry.children_of(dir_path)

    def dirty_files(self) -> list[CachedFile]:
        return self.registry.dirty_files()

    @property
    def dirty_bytes(self) -> int:
        return self.registry.dirty_bytes

    @property
    def cached_bytes(self) -> int:
        return self.space.cached_bytes

    @property
    def uploading_bytes(self) -> int:
        return self.space.uploading_bytes

    @property
    def limit_bytes(self) -> int:
        return self.space.limit_bytes

    async def wait_changed(self) -> None:
        await self.registry.wait_changed()

    # -- creating, revalidating and dropping entries ----------------------------------------------

    def _new_file(self, path: str, size: int, attrs: ObjectAttrs) -> CachedFile:
        file_id = self.registry.new_file_id()
        f = CachedFile(file_id=file_id, path=path, data_path=self.data_dir / str(file_id), size=size, attrs=attrs)
        f.truncate_data(size)
        self._adopt(f)
        return f

    def create(self, path: str, attrs: ObjectAttrs) -> CachedFile:
        """A new empty file (replacing any cached one at `path`); dirty until uploaded."""
        old = self.registry.get(path)
        if old is not None:
            self.forget(old)
        f = self._new_file(path, 0, attrs)
        f.version = 1
        self.registry.notify()
        return f

    def open_object(self, path: str, info: ObjectInfo, attrs: ObjectAttrs) -> CachedFile:
        """The cached file for an S3 object, created clean (nothing present yet) if needed."""
        f = self.registry.get(path)
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
        self.space.drop_present(f)
        f.truncate_data(info.size)
        f.size = f.base_size = f.shrunk_to = info.size
        f.base_key, f.base_etag = info.key, info.etag
        self.registry.notify()

    def forget(self, f: CachedFile) -> None:
        """Drops a file's local state entirely (unlink, or replaced by a rename). The row goes
        first: a row must never outlive the cache file it describes."""
        self.rounds.unjournal(f)
        self._drop(f)

    def _drop(self, f: CachedFile) -> None:
        """A forgotten file's memory and cache file (its row is gone already)."""
        f.deleted = True
        f.base_size = 0  # an open unlinked file reads what it has locally
        self.registry.remove(f)
        self.space.drop_present(f)
        if f.open_handles == 0:  # an open unlinked file keeps its bytes until release
            f.data_path.unlink(missing_ok=True)
        self.registry.notify()

    # -- renames ----------------------------------------------------------------------------------

    async def move(
        self,
        f: CachedFile,
        new_path: str,
        replaced: CachedFile | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Renames a cached file and its S3 object (the caller holds `f.upload_lock`, and that of
        `replaced`, the cached file at `new_path` if any), in an order a kill at any point
        converges from: the new name ends up with the newest acknowledged content, the old name
        gone (docs/architecture.md, "Renames"):
        1. one journal transaction drops `replaced`'s row and writes f's under the new name, its
           base still the old object (a rename in progress: a row whose base is not its own key);
        2. the base object is copied to the new key (`metadata`: new attributes for a clean file;
           a dirty one's follow with its upload, which then overwrites the copy);
        3. one transaction points f's row at the copy (or drops the row when nothing is left to
           upload) and records a pending delete of the old key;
        4. the old key is deleted (retried until it is), then its pending delete.
        Killed before 3, the restarted daemon redoes 2-4 (`finish_moves`), before it serves; after
        3, it does 4. A failed copy moves the file back and raises (nothing changed in S3)."""
        old_path = f.path
        base_moves = f.base_key not in (None, self.key_for(new_path))
        with self.journal.transaction():
            if replaced is not None:
                self.rounds.unjournal(replaced)
            self.registry.rekey(f, new_path)
            if base_moves or f.journaled_version > f.uploaded_version:
                self.rounds.journal_file(f)
        if replaced is not None:
            self._drop(replaced)
        if not base_moves:
            return
        try:
            old_key = await self._copy_base(f, metadata)
        except StoreError:
            self._move_back(f, old_path)
            raise
        await self._delete_moved_object(old_key, retry=True)

    def _move_back(self, f: CachedFile, old_path: str) -> None:
        self.registry.rekey(f, old_path)
        if f.journaled_version > f.uploaded_version:
            self.rounds.journal_file(f)
        else:
            self.rounds.unjournal(f)

    async def _copy_base(self, f: CachedFile, metadata: Mapping[str, str] | None) -> str:
        """Steps 2 and 3 of `move`: the base object copied to f's key and f's row pointed at it,
        with the old key recorded for deletion (returned)."""
        assert f.base_key is not None
        old_key = f.base_key
        info = await self.store.copy(old_key, self.key_for(f.path), metadata)
        f.base_key, f.base_etag = info.key, info.etag
        f.written_to_s3_at = time.time()
        with self.journal.transaction():
            self.journal.add_pending_delete(old_key)
            if f.journaled_version > f.uploaded_version:
                self.rounds.journal_file(f)
            else:
                self.rounds.unjournal(f)
        return old_key

    async def _delete_moved_object(self, key: str, retry: bool) -> None:
        """Step 4 of `move`: the old object is nobody's base any more. `retry`: until it is
        deleted (a pending delete must not outlive the rename: a file created later under the old
        name would go with it)."""
        delay = 0.2
        while True:
            try:
                await self.store.delete(key)
                break
            except StoreError as err:
                if not retry:
                    raise
                log.warning("deleting %s after a rename failed (%s: %s): retrying", key, type(err).__name__, err)
                await trio.sleep(delay)
                delay = min(delay * 2, MOVE_DELETE_RETRY_MAX_S)
        self.journal.remove_pending_delete(key)

    async def finish_moves(self) -> None:
        """Before a restarted daemon serves: finishes the renames its predecessor was killed in
        (see `move`), so no old name shows through and no later file at an old name is deleted.
        Raises StoreError when S3 fails meanwhile (the daemon does not start; the next start
        finishes them)."""
        for f in list(self.registry.files()):
            if f.base_key is None or f.base_key == self.key_for(f.path):
                continue
            log.info("%s: finishing its rename from %s (interrupted by a restart)", f.path, f.base_key)
            async with f.upload_lock:
                try:
                    old_key = await self._copy_base(f, None)
                except ObjectNotFound:
                    # Only if the journal lost a commit (power loss) or someone deleted the object:
                    # the upload retries, and says why in stats if the bytes it needs are gone.
                    log.error("%s: its rename's source %s is gone from S3", f.path, f.base_key)
                    continue
                await self._delete_moved_object(old_key, retry=False)
        for key in self.journal.pending_deletes():
            await self._delete_moved_object(key, retry=False)

    # -- reading and writing ----------------------------------------------------------------------

    async def read(self, f: CachedFile, offset: int, length: int, ra: ReadAhead) -> bytes:
        return await self.fetcher.read(f, offset, length, ra)

    async def warm(self, f: CachedFile) -> None:
        """Brings the whole file into the cache (the control socket's `warm`)."""
        await self.fetcher.warm(f)

    async def wait_for_room(self, f: CachedFile, incoming: int) -> None:
        await self.space.wait_for_room(f, incoming)

    async def write(self, f: CachedFile, offset: int, data: bytes) -> int:
        await self.space.wait_for_room(f, len(data))
        async with f.write_lock:
            if f.deleted:
                # Unlinked while open: keep accepting writes like a local file would, but for nothing.
                return len(data)
            end = offset + len(data)
            if self.rounds.holds_row_content(f):
                await self.uploads.preserve_acknowledged(f, f.size)
            elif f.upload_pinned:
                await self.uploads.detach_from_upload(f)
            f.pwrite(data, offset)
            if offset > f.size:
                self.space.add_present(f, f.size, offset)  # the hole reads as zeros
            self.space.add_present(f, offset, end)
            f.written.add(offset, end)
            f.size = max(f.size, end)
            f.version += 1
            self.space.touch(f, offset, end)
        return len(data)

    async def truncate(self, f: CachedFile, size: int) -> None:
        async with f.write_lock:
            if size == f.size:
                return
            if self.rounds.holds_row_content(f):
                await self.uploads.preserve_acknowledged(f, size)
            elif f.upload_pinned:
                await self.uploads.detach_from_upload(f)
            f.truncate_data(size)
            if size < f.size:
                self.space.truncate_present(f, size)
                f.written.truncate(size)
                f.base_size = min(f.base_size, size)
                f.shrunk_to = min(f.shrunk_to, size)
            else:
                self.space.add_present(f, f.size, size)
                f.written.add(f.size, size)
            f.size = size
            f.version += 1

    def set_attrs(self, f: CachedFile, attrs: ObjectAttrs) -> None:
        f.attrs = attrs
        f.version += 1

    # -- durability and upload --------------------------------------------------------------------

    async def commit(self, f: CachedFile) -> None:
        """The file's state is journaled and the upload queued. The bytes are in the page cache
        already (written with pwrite) and the row in SQLite's WAL, so a killed daemon loses
        nothing; `wait_power_safe` (which close() awaits next) makes them power-safe. Returns at
        once when nothing changed since the last commit (flush and release both commit)."""
        if f.deleted or f.version == f.journaled_version or not f.dirty:
            return
        self.rounds.journal_file(f)
        f.journaled_version = f.version
        self.last_commit_at = trio.current_time()
        self.on_needs_upload(f)
        self.registry.notify()

    async def wait_power_safe(self, f: CachedFile) -> None:
        """See `SyncRounds.wait_power_safe`: close() waits here for the next local sync round."""
        await self.rounds.wait_power_safe(f)

    @property
    def sync_wanted(self) -> trio.Event:
        """Set when a closer waits for a sync round (a new event after each round starts)."""
        return self.rounds.sync_wanted

    async def sync_round(self) -> int:
        return await self.rounds.sync_round()

    async def sync_acknowledged(self) -> int:
        return await self.rounds.sync_acknowledged()

    async def upload(self, f: CachedFile) -> None:
        """See `UploadBuilder.upload` (caller holds `f.upload_lock`)."""
        await self.uploads.upload(f)


def _row_version(rec: DirtyRecord) -> int:
    """The version a replayed file starts at: its row's (1 for rows of journals older than the
    column), so the names of preserved files stay those of the row."""
    return max(rec.version, 1)


def _rewrite_file(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, content, 0)
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
