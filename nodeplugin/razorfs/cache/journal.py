"""`Journal`: the SQLite database (WAL, synchronous=NORMAL) of a cache directory. It holds the
dirty/upload journal: one row per file whose content or attributes are not yet in S3, written
when close() acknowledges the data and removed once the upload succeeded. A restarted daemon
replays these rows: nothing close() acknowledged is lost when the daemon dies.

Durability, stated exactly: a row is committed without an fsync (the row, and the cache file it
describes, written with pwrite, are then in the kernel's page cache, which survives any death of
this process). A sync round then fsyncs the cache files of unsynced rows and their directory
(new and renamed cache files are found after a power loss), marks the rows `synced` and
fdatasyncs the WAL file (and the cache dir once per new WAL file): one WAL sync for all the rows of
a round, and for the rows removed since the last round. A small file's row carries its whole
content (`inline_data`), so its cache file needs no fsync: the row alone restores it, and such a
row is whole whenever it exists.
close() returns only after such a round (group commit: the closes that arrive during a round share
the next), so what close() acknowledged survives a power loss too. A row
found unsynced after a reboot (another `boot_id`) belongs to a close() that never returned, or to
an attribute change nobody waited on; it may describe bytes that never reached the disk, so the
cache quarantines it instead of uploading it.

Renames: a row whose `base_key` is not its own path's key belongs to a rename in progress (its
base object still sits under the old name), and `pending_deletes` holds old objects that are no
longer anyone's base and must be deleted; `FileCache.move` writes both, and a restarted daemon
finishes both before it serves (docs/architecture.md, "Renames")."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dirty_files (
    file_id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    base_key TEXT,
    base_etag TEXT,
    base_size INTEGER NOT NULL,
    present TEXT NOT NULL,
    written TEXT NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    mtime REAL NOT NULL
);
"""
# Old objects of renamed files, to delete (written in the same transaction as the row that stopped
# needing them as a base).
_PENDING_DELETES_SCHEMA = "CREATE TABLE IF NOT EXISTS pending_deletes (key TEXT PRIMARY KEY);"
# Added after the first release; rows of an older journal were written with synchronous=FULL
# after an fsync of their cache file, so they count as synced.
_ADDED_COLUMNS = {
    "synced": "INTEGER NOT NULL DEFAULT 1",
    "boot_id": "TEXT NOT NULL DEFAULT ''",
    "inline_data": "BLOB",
    # NULL in rows of an older journal: the times read as the mtime.
    "atime": "REAL",
    "ctime": "REAL",
    # The file's version when the row was written: names the copy of the row's content kept while a
    # program changes the cache file before its next close() (`<file_id>.acked-<version>`).
    "version": "INTEGER NOT NULL DEFAULT 0",
}
_COLUMNS = (
    "file_id, path, size, base_key, base_etag, base_size, present, written, mode, uid, gid, mtime, synced, boot_id, "
    "inline_data, atime, ctime, version"
)


def current_boot_id() -> str:
    """The kernel's id of this boot: equal ids mean the page cache survived (only a process died)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        # Unknown: every restart looks like the same boot, so unsynced rows are trusted (what a
        # killed daemon needs; only the power-loss check is lost).
        return ""


@dataclass(frozen=True)
class DirtyRecord:
    file_id: int
    path: str
    size: int
    base_key: str | None
    base_etag: str | None
    base_size: int
    present: list[list[int]]
    written: list[list[int]]
    mode: int
    uid: int
    gid: int
    mtime: float
    # A small file's whole content, kept in the row itself: the row is then complete on its own
    # (no cache file to fsync; replay rewrites the cache file from it).
    inline_data: bytes | None = None
    atime: float | None = None
    ctime: float | None = None
    version: int = 0
    # Read back by `dirty_records`: whether the row's cache file was fsync'd before the row was
    # marked, and the boot the row was written in.
    synced: bool = False
    boot_id: str = ""


class Journal:
    def __init__(self, db_path: Path) -> None:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each record is one transaction.
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit writes the WAL without fsync (durable against a process crash);
        # `sync_wal` makes a whole round of commits power-safe with one fsync.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(_PENDING_DELETES_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(dirty_files)")}
        for name, decl in _ADDED_COLUMNS.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE dirty_files ADD COLUMN {name} {decl}")
        self.boot_id = current_boot_id()
        self._wal_path = Path(f"{db_path}-wal")
        self._wal_inode_in_dir = 0  # the WAL file whose directory entry sync_wal made durable

    def close(self) -> None:
        # A checkpoint syncs the WAL and the database (synchronous=NORMAL does at checkpoints), so
        # rows removed before a clean exit do not come back after a later power loss.
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as err:  # rows removed late may be uploaded once more; nothing is lost
            log.warning("journal checkpoint at close failed: %s", err)
        self._db.close()

    def max_file_id(self) -> int:
        """File ids above this are free (cache files of clean entries are dropped on start)."""
        row = self._db.execute("SELECT MAX(file_id) FROM dirty_files").fetchone()
        return int(row[0] or 0)

    def record_dirty(self, rec: DirtyRecord) -> None:
        """Writes the row as unsynced (its cache file may not be on the disk yet)."""
        self._db.execute(
            f"INSERT OR REPLACE INTO dirty_files ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?)",
            (
                rec.file_id,
                rec.path,
                rec.size,
                rec.base_key,
                rec.base_etag,
                rec.base_size,
                json.dumps(rec.present),
                json.dumps(rec.written),
                rec.mode,
                rec.uid,
                rec.gid,
                rec.mtime,
                self.boot_id,
                rec.inline_data,
                rec.atime,
                rec.ctime,
                rec.version,
            ),
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The calls inside (no await among them) commit together or not at all: a kill between
        two of them leaves none."""
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def add_pending_delete(self, key: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO pending_deletes (key) VALUES (?)", (key,))

    def remove_pending_delete(self, key: str) -> None:
        self._db.execute("DELETE FROM pending_deletes WHERE key = ?", (key,))

    def pending_deletes(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT key FROM pending_deletes ORDER BY key")]

    def mark_synced(self, file_ids: Iterable[int]) -> None:
        """Marks rows whose cache files the caller fsync'd. Durable only after `sync_wal`; a mark
        lost to a power loss before it only makes the row look unsynced (quarantined, not lost)."""
        self._db.executemany("UPDATE dirty_files SET synced = 1 WHERE file_id = ?", [(i,) for i in file_ids])

    def sync_wal(self) -> None:
        """Makes every commit so far durable (rows written, marked or removed): an fsync of the
        WAL file, which holds every commit since the last checkpoint (and a checkpoint syncs what
        it moves into the database). Safe from any thread: it takes no SQLite lock, so the trio
        thread keeps committing meanwhile."""
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:  # no commit since the last checkpoint removed it
            return
        try:
            # fdatasync: the frames and the file's length, not its timestamps. Once the WAL has
            # been reset by a checkpoint, frames overwrite its old blocks and no journal commit of
            # the filesystem is needed.
            os.fdatasync(fd)
            inode = os.fstat(fd).st_ino
            if inode != self._wal_inode_in_dir:
                # A new WAL file (SQLite makes one when the database opens): its directory entry
                # must be on the disk too, or a power loss leaves synced frames in no file.
                dir_fd = os.open(self._wal_path.parent, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
                self._wal_inode_in_dir = inode
        finally:
            os.close(fd)

    def rebase(self, file_id: int, base_key: str, base_etag: str) -> None:
        """Points the row's base at a newer upload, keeping what it says of the content: the bytes
        the row takes from its base are unchanged in every upload since (they were never written)."""
        self._db.execute(
            "UPDATE dirty_files SET base_key = ?, base_etag = ? WHERE file_id = ?", (base_key, base_etag, file_id)
        )

    def mark_unsynced(self, file_id: int) -> None:
        self._db.execute("UPDATE dirty_files SET synced = 0, boot_id = ? WHERE file_id = ?", (self.boot_id, file_id))

    def remove(self, file_id: int) -> None:
        # A row that reappears after a power loss only causes one more (identical) upload.
        self._db.execute("DELETE FROM dirty_files WHERE file_id = ?", (file_id,))

    def dirty_records(self) -> list[DirtyRecord]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM dirty_files ORDER BY file_id").fetchall()
        return [_record(r) for r in rows]

    def dirty_record(self, file_id: int) -> DirtyRecord | None:
        """The file's row, or None when it has none."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM dirty_files WHERE file_id = ?", (file_id,)).fetchone()
        return None if row is None else _record(row)


def _record(r: tuple[Any, ...]) -> DirtyRecord:
    return DirtyRecord(
        file_id=r[0],
        path=r[1],
        size=r[2],
        base_key=r[3],
        base_etag=r[4],
        base_size=r[5],
        present=json.loads(r[6]),
        written=json.loads(r[7]),
        mode=r[8],
        uid=r[9],
        gid=r[10],
        mtime=r[11],
        synced=bool(r[12]),
        boot_id=r[13],
        inline_data=None if r[14] is None else bytes(r[14]),
        atime=r[15],
        ctime=r[16],
        version=r[17],
    )
