"""`UploadBuilder`: turns a dirty file into one upload (a PUT from memory, a PUT of the cache
file, or a compose that copies unchanged ranges server-side) and records the result. What is
uploaded is fixed under the file's write lock, so an object is never a mix of two versions."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.errors import CacheConflict
from razorfs.cache.fetcher import MAX_FILL_ATTEMPTS, RangeFetcher, missing_in_base
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.range_map import RangeMap
from razorfs.cache.registry import FileRegistry
from razorfs.cache.space import CacheSpace
from razorfs.cache.sync_rounds import SyncRounds, fsync_directory
from razorfs.store.base import CopyRange, FileRange, ObjectInfo
from razorfs.store.object_attrs import ObjectAttrs, metadata_from_attrs

log = logging.getLogger(__name__)

# Files at least this large whose written ranges cover less than half of them are uploaded with
# compose: unchanged ranges are copied server-side instead of re-uploaded.
COMPOSE_MIN_BYTES = 32 * 1024 * 1024
# Compose segments are aligned to this, so every copied or uploaded part but the last is >= 5 MiB.
COMPOSE_SEGMENT_BYTES = 8 * 1024 * 1024
# Files up to this size are uploaded from memory (read under the write lock): one PUT, no file.
SMALL_UPLOAD_BYTES = 1024 * 1024
# An upload reads the cache file through /proc/self/fd/N: the open inode, even after a write
# replaced the file at its path with a private copy.
_PROC_FD_DIR = Path("/proc/self/fd")

# (start, end, copy) segments of a compose: copy=True reuses the base object's bytes.
_ComposePlan = list[tuple[int, int, bool]]


@dataclass
class _FixedUpload:
    """What one upload sends, fixed under the write lock: `body` (a small file), or the cache
    file through `pinned_fd`, or a `snapshot` copy of it (no /proc)."""

    plan: _ComposePlan | None
    version: int
    size: int
    attrs: ObjectAttrs
    base_key: str | None
    base_etag: str | None
    body: bytes | None = None
    pinned_fd: int = -1
    snapshot: Path | None = None


class UploadBuilder:
    def __init__(
        self,
        store: MeteredStore,
        key_for: Callable[[str], str],
        registry: FileRegistry,
        space: CacheSpace,
        fetcher: RangeFetcher,
        rounds: SyncRounds,
        upload_dir: Path,
    ) -> None:
        self.store = store
        self.key_for = key_for
        self.registry = registry
        self.space = space
        self.fetcher = fetcher
        self.rounds = rounds
        self.upload_dir = upload_dir
        self.pin_uploads = _PROC_FD_DIR.is_dir()

    def _compose_plan(self, f: CachedFile) -> _ComposePlan | None:
        """(start, end, copy) segments when compose pays off, else None (upload the whole file)."""
        if f.base_key is None or f.size < COMPOSE_MIN_BYTES or f.written.total() * 2 > f.size:
            return None
        plan: _ComposePlan = []
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
        file a private copy first (`detach_from_upload`), so the object is never a mix of two
        versions; writes after that point keep the file dirty for the next round."""
        key = self.key_for(f.path)
        fixed = await self._fix_upload(f)
        if fixed is None:
            return
        info = await self._send(f, key, fixed)
        f.base_key, f.base_etag = key, info.etag
        f.written_to_s3_at = time.time()
        f.base_size = min(fixed.size, f.shrunk_to)
        f.uploaded_version = max(f.uploaded_version, fixed.version)
        f.validated_at = time.monotonic()
        # A base under another key (a rename that could not finish its copy) is deleted only once
        # the row no longer needs it, through a pending delete written with the row's change.
        moved_from = fixed.base_key if fixed.base_key not in (None, key) else None
        with self.rounds.journal.transaction():
            if moved_from is not None:
                self.rounds.journal.add_pending_delete(moved_from)
            if not f.dirty:
                f.written = RangeMap()
                self.rounds.unjournal(f)
            elif f.journaled_version <= f.uploaded_version:
                # What close() acknowledged is in S3; the changes since are not acknowledged, and
                # a row describing the older content would not describe the cache file any more.
                self.rounds.unjournal(f)
            elif f.row_version is not None and f.version != f.row_version:
                # Changed since the row (a program writing, not closed yet): the row keeps the
                # acknowledged content, whose unwritten bytes the new object holds too.
                self.rounds.journal.rebase(f.file_id, key, info.etag)
            else:
                self.rounds.journal_file(f)
        if moved_from is not None:
            await self.store.delete(moved_from)
            self.rounds.journal.remove_pending_delete(moved_from)
        log.debug("uploaded %s (%d bytes, ETag %s, base was %s)", f.path, fixed.size, info.etag, fixed.base_etag)
        self.registry.notify()

    async def _fix_upload(self, f: CachedFile) -> _FixedUpload | None:
        """Fetches what the upload needs locally, then fixes its content under the write lock
        (planning again when the file changed meanwhile); None when the file was deleted."""
        for _ in range(MAX_FILL_ATTEMPTS):
            plan = self._compose_plan(f)
            local = [(s, e) for s, e, copy in plan if not copy] if plan else [(0, f.size)]
            for s, e in local:
                await self.fetcher.fill(f, s, e)
            async with f.write_lock:
                if f.deleted:
                    return None
                acknowledged = self._acknowledged_content(f)
                if acknowledged is not None:
                    return acknowledged
                if self._compose_plan(f) != plan or any(missing_in_base(f, s, e) for s, e in local):
                    continue  # changed while we fetched: plan again
                fixed = _FixedUpload(plan, f.version, f.size, f.attrs, f.base_key, f.base_etag)
                f.shrunk_to = fixed.size
                if plan is None and fixed.size <= SMALL_UPLOAD_BYTES:
                    fixed.body = f.pread(0, fixed.size)
                else:
                    fixed.pinned_fd = self._pin(f, fixed.size)
                    if fixed.pinned_fd < 0:  # no /proc: a snapshot copy, as a plain file
                        fixed.snapshot = self.upload_dir / f"{f.file_id}.{f.version}"
                        await trio.to_thread.run_sync(_copy_ranges, f.data_path, fixed.snapshot, local, fixed.size)
            return fixed
        raise CacheConflict(f"{f.path}: kept changing while preparing its upload")

    def _acknowledged_content(self, f: CachedFile) -> _FixedUpload | None:
        """When a program changed the file after its journal row and has not closed it yet (caller
        holds the write lock), the upload sends the row's content, what close() acknowledged, not
        the changes in progress: from the row itself when it holds the content inline, else from
        the preserved file (`preserve_acknowledged`) when that holds all of it. The unjournal
        after such an upload then leaves the changes in progress dirty, and they go with the next
        close(). None when the file has no such changes, or when the row's content is not whole
        on this disk (a partly cached large file): then the current content goes, as an NFS
        client writes back an open file's pages (docs/architecture.md)."""
        if f.row_version is None or f.version == f.row_version:
            return None
        rec = self.rounds.journal.dirty_record(f.file_id)
        if rec is None or rec.version != f.row_version:
            return None
        attrs = ObjectAttrs(rec.mode, rec.uid, rec.gid, rec.mtime, rec.atime, rec.ctime)
        fixed = _FixedUpload(None, rec.version, rec.size, attrs, rec.base_key, rec.base_etag)
        if rec.inline_data is not None:
            fixed.body = rec.inline_data
            return fixed
        if f.preserved_version != rec.version or not RangeMap.from_list(rec.present).contains(0, rec.size):
            return None
        fd = os.open(f.preserved_path(rec.version), os.O_RDONLY)
        if os.fstat(fd).st_size != rec.size:
            os.close(fd)
            return None
        if rec.size <= SMALL_UPLOAD_BYTES:
            try:
                fixed.body = os.pread(fd, rec.size, 0)
            finally:
                os.close(fd)
        elif not self.pin_uploads:  # no /proc to read the open inode through
            os.close(fd)
            return None
        else:
            fixed.pinned_fd = fd  # the preserved inode: the program's changes go to another one
        log.debug("%s is being changed: uploading its acknowledged version %d", f.path, rec.version)
        return fixed

    async def _send(self, f: CachedFile, key: str, fixed: _FixedUpload) -> ObjectInfo:
        """Runs the upload; unpins (or removes the snapshot) whatever happens."""
        source = fixed.snapshot if fixed.snapshot is not None else _PROC_FD_DIR / str(fixed.pinned_fd)
        metadata = metadata_from_attrs(fixed.attrs)
        plan, size = fixed.plan, fixed.size
        self.space.uploading_bytes += size
        try:
            if fixed.body is not None:
                return await self.store.put_bytes(key, fixed.body, metadata)
            if plan is not None:
                assert fixed.base_key is not None
                parts: list[CopyRange | FileRange] = [
                    CopyRange(fixed.base_key, s, e - s) if copy else FileRange(source, s, e - s) for s, e, copy in plan
                ]
                log.info(
                    "uploading %s with compose (%d bytes reused server-side)",
                    f.path,
                    sum(e - s for s, e, copy in plan if copy),
                )
                return await self.store.compose(key, parts, metadata)
            return await self.store.put_file(key, source, size, metadata)
        finally:
            self.space.uploading_bytes -= size
            if fixed.pinned_fd >= 0:
                f.upload_pinned = False
                os.close(fixed.pinned_fd)
            if fixed.snapshot is not None:
                fixed.snapshot.unlink(missing_ok=True)

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

    async def preserve_acknowledged(self, f: CachedFile, keep_below: int) -> None:
        """Before the first change to a cache file that holds what the file's journal row describes
        (caller holds the write lock; `SyncRounds.holds_row_content`): that inode is kept under
        `preserved_path(row_version)` and the file goes on in a private copy of its present bytes
        below `keep_below` (a truncate to 0, as an O_TRUNC open does, copies nothing). A kill
        between any two steps leaves the row's content whole under one of the names, and replay
        puts the preserved one back. The link's directory entry is fsync'd before the copy takes
        the cache file's name, so a power loss cannot keep the rename and lose the link. An upload
        reading the old inode through its fd goes on reading it."""
        version = f.row_version
        assert version is not None
        kept = f.preserved_path(version)
        kept.unlink(missing_ok=True)  # left by a daemon killed here, before the rename
        os.link(f.data_path, kept)
        await trio.to_thread.run_sync(fsync_directory, f.data_path.parent)
        racing_upload = f.upload_pinned
        ranges = f.present.copy()
        ranges.truncate(keep_below)
        tmp = f.data_path.parent / f"{f.file_id}.detached"
        await trio.to_thread.run_sync(_copy_ranges, f.data_path, tmp, list(ranges), None)
        os.replace(tmp, f.data_path)
        f.upload_pinned = False
        self.rounds.note_preserved(f, version)
        when = "while being uploaded" if racing_upload else "before its acknowledged version was uploaded"
        log.info("%s changed %s: kept that version as %s, gave it a private copy", f.path, when, kept)

    async def detach_from_upload(self, f: CachedFile) -> None:
        """Before a change to a file an upload is reading (caller holds the write lock): the file
        gets a private copy at its path, the upload keeps reading the old inode through its fd.
        Costs what the snapshot before every upload used to cost, but only when a writer races an
        upload."""
        before = f.present.copy()
        tmp = f.data_path.parent / f"{f.file_id}.detached"
        await trio.to_thread.run_sync(_copy_ranges, f.data_path, tmp, list(before), None)
        # Ranges a readahead fetch filled while we copied (no await from here to the rename).
        added = [gap for s, e in f.present for gap in before.missing(s, e)]
        _copy_ranges(f.data_path, tmp, added, None, into_existing=True)
        os.replace(tmp, f.data_path)
        f.upload_pinned = False
        self.rounds.note_new_inode(f)
        log.info("%s changed while being uploaded: gave it a private copy", f.path)


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
