"""`Journal`: the SQLite database (WAL, synchronous=FULL) of a cache directory. It holds the
dirty/upload journal: one row per file whose content or attributes are not yet in S3, written
when close() acknowledges the data (after the cache file is fsync'd) and removed once the upload
succeeded. A restarted daemon replays these rows: nothing close() acknowledged is lost."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

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


class Journal:
    def __init__(self, db_path: Path) -> None:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each record is one transaction.
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def max_file_id(self) -> int:
        """File ids above this are free (cache files of clean entries are dropped on start)."""
        row = self._db.execute("SELECT MAX(file_id) FROM dirty_files").fetchone()
        return int(row[0] or 0)

    def record_dirty(self, rec: DirtyRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO dirty_files VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
            ),
        )

    def remove(self, file_id: int) -> None:
        # Forgetting a row needs no fsync of its own: a row that reappears after a power loss
        # only causes one more (identical) upload. The next record_dirty syncs it anyway.
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute("DELETE FROM dirty_files WHERE file_id = ?", (file_id,))
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def dirty_records(self) -> list[DirtyRecord]:
        rows = self._db.execute("SELECT * FROM dirty_files ORDER BY file_id").fetchall()
        return [
            DirtyRecord(
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
            )
            for r in rows
        ]
