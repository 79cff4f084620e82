"""`SyncRounds`: close()'s durability against power loss, by group commit. It writes the journal
rows of acknowledged files and remembers which are not yet on the disk; a round fsyncs their cache
files, marks the rows synced and fsyncs the WAL once; closers wait for the next round.

It also owns the preserved copies of rows' content (`<file_id>.acked-<version>`, made by
`UploadBuilder.preserve_acknowledged` before the first change to a cache file that holds a row's
content): a round fsyncs a row's preserved file instead of the changed cache file, and a preserved
file whose row was replaced or removed is deleted only after the round whose WAL sync made that
change durable, so neither a killed daemon nor a power loss finds a row without its content."""

from __future__ import annotations

import ctypes
import errno
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.journal import Journal

# A file up to this size, whole in the cache, is journaled with its content in the row: its close
# then costs one WAL fsync (shared by the round), not also an fsync of its cache file.
INLINE_MAX_BYTES = 64 * 1024
# A sync round with more unsynced files than this syncs the cache's filesystem in one call.
SYNCFS_ABOVE_FILES = 8


@dataclass
class _SyncRound:
    """A sync round that closers wait for; `error` is set when it failed."""

    done: trio.Event = field(default_factory=trio.Event)
    error: OSError | None = None


class SyncRounds:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
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
        # Preserved files whose rows were replaced or removed: deleted after the next WAL sync.
        self._superseded: list[Path] = []

    # -- journal rows -----------------------------------------------------------------------------

    def adopt_replayed(self, f: CachedFile, inline: bool, synced: bool) -> None:
        """A file rebuilt from a row of an earlier daemon."""
        if inline:
            self._inline.add(f.file_id)
        if not synced:
            self._unsynced[f.file_id] = f

    def journal_file(self, f: CachedFile) -> None:
        """Writes the file's journal row (durable against a process crash once this returns)."""
        inline = f.pread(0, f.size) if f.size <= INLINE_MAX_BYTES and f.present.contains(0, f.size) else None
        self.journal.record_dirty(f.dirty_record(inline))
        self._supersede_preserved(f)
        f.row_version = f.version
        self._unsynced[f.file_id] = f
        if inline is None:
            self._inline.discard(f.file_id)
        else:
            self._inline.add(f.file_id)

    def unjournal(self, f: CachedFile) -> None:
        self.journal.remove(f.file_id)
        self._supersede_preserved(f)
        f.row_version = None
        self._unsynced.pop(f.file_id, None)
        self._inline.discard(f.file_id)
        self._removed_unsynced = True

    def _supersede_preserved(self, f: CachedFile) -> None:
        """The row the preserved file belonged to is replaced or removed (committed once the
        caller's transaction is): the file goes after the next WAL sync, when a power loss can no
        longer bring that row back."""
        if f.preserved_version is not None:
            self._superseded.append(f.preserved_path(f.preserved_version))
            f.preserved_version = None

    def holds_row_content(self, f: CachedFile) -> bool:
        """Whether the cache file itself is the only copy of what the file's row describes (a row
        with content inline needs no cache file): a change must preserve it first."""
        return f.row_version is not None and f.file_id not in self._inline and f.preserved_version != f.row_version

    def row_content_path(self, f: CachedFile) -> Path:
        """The file holding the content the row describes: the preserved copy once the cache file
        changed after the row, else the cache file."""
        if f.preserved_version is not None and f.preserved_version == f.row_version:
            return f.preserved_path(f.preserved_version)
        return f.data_path

    def note_preserved(self, f: CachedFile, version: int) -> None:
        """The content of the row of `version` now lives under `preserved_path(version)` (same
        inode as before): a row not synced yet has that file fsync'd by the next round, not the
        changed cache file. If the row was replaced or removed meanwhile (an upload finished while
        the content was being preserved), the preserved file is already superseded."""
        if f.row_version != version:
            self._superseded.append(f.preserved_path(version))
            return
        f.preserved_version = version
        if f.file_id in self._unsynced or f.file_id in self._syncing:
            self._unsynced[f.file_id] = f

    def note_new_inode(self, f: CachedFile) -> None:
        """The file's cache file was replaced by a copy not on the disk yet: if it holds the row's
        content (never after `note_preserved`), the row is not power-safe until the next round."""
        if self.holds_row_content(f) and (f.file_id in self._unsynced or f.needs_upload):
            self.journal.mark_unsynced(f.file_id)
            self._unsynced[f.file_id] = f

    # -- rounds -----------------------------------------------------------------------------------

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
        if not self._unsynced and not self._removed_unsynced and not self._superseded:
            return 0
        pending = list(self._unsynced.values())
        superseded, self._superseded = self._superseded, []
        self._unsynced.clear()
        self._removed_unsynced = False
        paths = [self.row_content_path(f) for f in pending if f.needs_upload and f.file_id not in self._inline]
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
            self._superseded = superseded + self._superseded
            raise
        # No need to sync these deletions: a preserved file found without its row is deleted at
        # replay.
        for path in superseded:
            path.unlink(missing_ok=True)
        return len(synced)


def _fsync_paths(paths: list[Path]) -> None:
    """fsync each file, then each of their directories (a cache file made or renamed since the
    last round is found after a power loss only if its directory entry is on the disk too); for
    more than SYNCFS_ABOVE_FILES, one syncfs of their filesystem instead (a burst of small files
    would otherwise cost one ext4 journal commit each, and stall the creates of the files that
    follow)."""
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
    for directory in sorted({path.parent for path in paths}):
        fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
