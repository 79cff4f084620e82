"""`SavedHeads`: what HEADs said about objects (ETag, size, S3's LastModified, user metadata),
kept across mounts in `<cache-dir>/heads.sqlite`, so that `ls -l` after a remount needs no HEAD
per listed object: a listing entry with the same ETag and LastModified vouches for the saved
answer exactly as it vouches for one fetched earlier in the same mount (`MetadataCache`).

A cache, not a journal: a separate database (the journal's sync rounds never carry these rows),
WAL with synchronous=NORMAL (a commit does not fsync; a crash loses the last rows, never the
file), rows written in batches by one owner task on a worker thread, read once per directory on
a worker thread; the trio thread only queues. At most MAX_ROWS rows (least recently used go);
a file that cannot be opened or written is recreated, else the mount runs without it."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

import trio

from razorfs.store.base import ObjectInfo

log = logging.getLogger(__name__)

FILE_NAME = "heads.sqlite"
MAX_ROWS = 200_000
# Evicting the least recently used rows brings the table back to this share of MAX_ROWS.
EVICT_TO_SHARE = 0.9
FLUSH_INTERVAL_S = 1.0
# An answer whose object changed less than this long ago is not saved (yet): a listing shows
# LastModified in whole seconds, so a metadata rewrite later within that second (a copy onto
# itself keeps the ETag) would look like the saved object. The next listing that vouches for it
# once it is older saves it.
SETTLED_AFTER_S = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    key TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_modified REAL NOT NULL,
    metadata TEXT NOT NULL,
    used_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS heads_by_parent ON heads (parent);
CREATE INDEX IF NOT EXISTS heads_by_use ON heads (used_at);
CREATE TABLE IF NOT EXISTS about (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def parent_of(key: str) -> str:
    """The listing prefix a key is listed under: everything up to its last "/" ("" at the root)."""
    return key[: key.rfind("/") + 1]


class SavedHeads:
    """One per mount. `volume` names what the keys belong to (`s3://bucket/prefix`): a cache dir
    reused for another volume starts empty."""

    def __init__(self, cache_dir: Path, volume: str, max_rows: int = MAX_ROWS) -> None:
        self.path = cache_dir / FILE_NAME
        self.max_rows = max_rows
        self._lock = threading.Lock()  # the connection is used by one worker thread at a time
        # key -> the answer to save, or None to delete the row; swapped out whole by a flush.
        self._pending: dict[str, tuple[ObjectInfo, float] | None] = {}
        self._touched: set[str] = set()  # parents whose rows were used: their used_at moves
        self._rows_estimate = 0
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._open(volume)
        except sqlite3.Error as err:
            log.warning("%s unusable (%s): recreating it", self.path, err)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            try:
                self._db = self._open(volume)
            except sqlite3.Error as again:
                log.warning("%s: cannot be created (%s): attributes are not kept across mounts", self.path, again)

    def _open(self, volume: str) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM about WHERE name = 'volume'").fetchone()
            if row is None or row[0] != volume:
                db.execute("BEGIN")
                db.execute("DELETE FROM heads")
                db.execute("INSERT OR REPLACE INTO about (name, value) VALUES ('volume', ?)", (volume,))
                db.execute("COMMIT")
            self._rows_estimate = int(db.execute("SELECT COUNT(*) FROM heads").fetchone()[0])
        except sqlite3.Error:
            db.close()
            raise
        return db

    @property
    def enabled(self) -> bool:
        return self._db is not None

    # -- trio thread: queueing --------------------------------------------------------------------

    def save(self, info: ObjectInfo, s3_modified: float) -> bool:
        """Queues the answer of a HEAD (or of our own write, once a listing gave S3's time of it).
        False when it is too recent to be saved yet (see SETTLED_AFTER_S)."""
        if self._db is None:
            return True
        if time.time() - s3_modified < SETTLED_AFTER_S:
            return False
        self._pending[info.key] = (info, s3_modified)
        return True

    def drop(self, key: str) -> None:
        """Queues the removal of a key's row (the object changed here, or is gone)."""
        if self._db is not None:
            self._pending[key] = None

    # -- worker threads ---------------------------------------------------------------------------

    async def saved_under(self, parent: str) -> list[tuple[ObjectInfo, float]]:
        """The saved answers of the keys listed under `parent`, with S3's LastModified of each;
        rows waiting to be deleted are left out."""
        if self._db is None:
            return []
        rows = await trio.to_thread.run_sync(self._read_parent, parent)
        self._touched.add(parent)
        return [row for row in rows if self._pending.get(row[0].key, row) is not None]

    def _read_parent(self, parent: str) -> list[tuple[ObjectInfo, float]]:
        with self._lock:
            if self._db is None:
                return []
            try:
                rows = self._db.execute(
                    "SELECT key, etag, size, last_modified, metadata FROM heads WHERE parent = ?", (parent,)
                ).fetchall()
            except sqlite3.Error as err:
                self._disable(err)
                return []
        found = []
        for key, etag, size, last_modified, metadata in rows:
            try:
                decoded = json.loads(metadata)
            except ValueError:
                continue  # a torn row: its object is HEADed again
            found.append((ObjectInfo(key, size, etag, last_modified, decoded), last_modified))
        return found

    async def run(self) -> None:
        """The owner task: writes what was queued every FLUSH_INTERVAL_S (the daemon cancels it
        and calls `close`, which writes the rest)."""
        while True:
            await trio.sleep(FLUSH_INTERVAL_S)
            if self._pending or self._touched:
                batch, touched = self._take()
                await trio.to_thread.run_sync(self._write, batch, touched)

    def _take(self) -> tuple[dict[str, tuple[ObjectInfo, float] | None], set[str]]:
        batch, self._pending = self._pending, {}
        touched, self._touched = self._touched, set()
        return batch, touched

    def _write(self, batch: dict[str, tuple[ObjectInfo, float] | None], touched: set[str]) -> None:
        now = time.time()
        saved = [
            (key, parent_of(key), v[0].etag, v[0].size, v[1], json.dumps(dict(v[0].metadata)), now)
            for key, v in batch.items()
            if v is not None
        ]
        dropped = [(key,) for key, v in batch.items() if v is None]
        with self._lock:
            if self._db is None:
                return
            try:
                self._db.execute("BEGIN")
                self._db.executemany("DELETE FROM heads WHERE key = ?", dropped)
                self._db.executemany("INSERT OR REPLACE INTO heads VALUES (?,?,?,?,?,?,?)", saved)
                self._db.executemany("UPDATE heads SET used_at = ? WHERE parent = ?", [(now, p) for p in touched])
                self._db.execute("COMMIT")
                self._rows_estimate += len(saved)
                if self._rows_estimate > self.max_rows:
                    self._evict()
            except sqlite3.Error as err:
                self._disable(err)

    def _evict(self) -> None:
        """Deletes the least recently used rows down to EVICT_TO_SHARE of MAX_ROWS (lock held)."""
        assert self._db is not None
        count = int(self._db.execute("SELECT COUNT(*) FROM heads").fetchone()[0])
        excess = count - int(self.max_rows * EVICT_TO_SHARE)
        if count > self.max_rows and excess > 0:
            self._db.execute(
                "DELETE FROM heads WHERE key IN (SELECT key FROM heads ORDER BY used_at LIMIT ?)", (excess,)
            )
            count -= excess
        self._rows_estimate = count

    def _disable(self, err: sqlite3.Error) -> None:
        """A failure of a cache the mount can do without: logged once, then no more saving (lock
        held). The file is recreated at the next mount if it cannot be opened then."""
        log.warning("%s failed (%s): attributes are no longer kept across mounts", self.path, err)
        assert self._db is not None
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._db = None

    def close(self) -> None:
        """Writes what is still queued and closes the file (after the owner task ended)."""
        if self._db is None:
            return
        self._write(*self._take())
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                except sqlite3.Error as err:
                    log.warning("%s: close failed: %s", self.path, err)
                self._db = None
