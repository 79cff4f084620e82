"""`SyncRounds`: close()'s durability against power loss, by group commit. It writes the journal
rows of acknowledged files and remembers which are not yet on the disk; a round fsyncs their cache
files, marks the rows synced and fsyncs the WAL once; closers wait for the next round."""

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
        self._unsynced[f.file_id] = f
        if inline is None:
            self._inline.discard(f.file_id)
        else:
            self._inline.add(f.file_id)

    def unjournal(self, f: CachedFile) -> None:
        self.journal.remove(f.file_id)
        self._unsynced.pop(f.file_id, None)
        self._inline.discard(f.file_id)
        self._removed_unsynced = True

    def note_new_inode(self, f: CachedFile) -> None:
        """The file's cache file was replaced by a copy not on the disk yet: until the next round,
        its row is not power-safe."""
        if f.file_id in self._unsynced or f.needs_upload:
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
