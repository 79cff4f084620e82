"""The journal keeps a dirty file's atime and ctime (issue 14), and rows of a journal written
before those columns existed read with both times equal to the mtime."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.journal import Journal
from razorfs.store.object_attrs import ObjectAttrs


def test_atime_and_ctime_of_a_dirty_file_come_back_from_the_journal(tmp_path: Path) -> None:
    attrs = ObjectAttrs(stat.S_IFREG | 0o600, 5, 6, mtime=1_000_000_000.5, atime=978_307_201.0, ctime=1_700_000_000.25)
    f = CachedFile(file_id=1, path="a", data_path=tmp_path / "1", size=0, attrs=attrs)
    journal = Journal(tmp_path / "j.sqlite")
    journal.record_dirty(f.dirty_record())
    (rec,) = journal.dirty_records()
    assert ObjectAttrs(rec.mode, rec.uid, rec.gid, rec.mtime, rec.atime, rec.ctime) == attrs


def test_rows_of_an_older_journal_read_their_times_as_the_mtime(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "j.sqlite")
    db.execute(
        "CREATE TABLE dirty_files (file_id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, "
        "base_key TEXT, base_etag TEXT, base_size INTEGER NOT NULL, present TEXT NOT NULL, written TEXT NOT NULL, "
        "mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, mtime REAL NOT NULL)"
    )
    db.execute("INSERT INTO dirty_files VALUES (1, 'a', 0, NULL, NULL, 0, '[]', '[]', 33188, 0, 0, 1600000000.0)")
    db.commit()
    db.close()
    (rec,) = Journal(tmp_path / "j.sqlite").dirty_records()
    attrs = ObjectAttrs(rec.mode, rec.uid, rec.gid, rec.mtime, rec.atime, rec.ctime)
    assert (attrs.access_time, attrs.change_time) == (1_600_000_000.0, 1_600_000_000.0)
