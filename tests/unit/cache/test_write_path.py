"""The write path's costs and promises without FUSE, over a LocalDirStore: close() journals once
per change without an fsync, a sync round makes rows power-safe, rows of an earlier boot that were
never synced are quarantined, uploads read the cache file in place and a write racing an upload
goes to a private copy (the object is one version), and random reads fetch small units."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest
import trio

from razorfs.cache import sync_rounds
from razorfs.cache.fetcher import FETCH_UNIT_BYTES
from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import DirtyRecord, Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.readahead import ReadAhead
from razorfs.cache.sync_rounds import INLINE_MAX_BYTES, SYNCFS_ABOVE_FILES
from razorfs.cache.upload_builder import SMALL_UPLOAD_BYTES
from razorfs.cache.uploader import Uploader
from razorfs.store.base import ObjectInfo
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import ObjectAttrs

MiB = 1024 * 1024
ATTRS = ObjectAttrs(stat.S_IFREG | 0o644, 0, 0, 1_700_000_000.0)


class CountingJournal(Journal):
    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path)
        self.records = 0

    def record_dirty(self, rec: DirtyRecord) -> None:
        self.records += 1
        super().record_dirty(rec)


class GatedStore(LocalDirStore):
    """put_file waits (in its worker thread) until the test opens the gate."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.started = threading.Event()
        self.gate = threading.Event()

    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        self.started.set()
        self.gate.wait(30)
        return super().put_file(key, path, metadata)


def _cache(tmp_path: Path, store: LocalDirStore, journal: Journal | None = None) -> FileCache:
    journal = journal or Journal(tmp_path / "cache.sqlite")
    return FileCache(tmp_path / "cache", MeteredStore(store), journal, 256 * MiB, lambda p: f"vol/{p}", 1.0)


def test_flush_and_release_journal_an_unchanged_file_once(tmp_path: Path) -> None:
    journal = CountingJournal(tmp_path / "cache.sqlite")
    cache = _cache(tmp_path, LocalDirStore(tmp_path / "store"), journal)

    async def main() -> None:
        f = cache.create("a", ATTRS)
        await cache.write(f, 0, b"x" * 4096)
        await cache.commit(f)  # flush()
        await cache.commit(f)  # release()
        assert journal.records == 1
        await cache.write(f, 4096, b"y")
        await cache.commit(f)
        assert journal.records == 2

    trio.run(main)


@pytest.mark.parametrize("files", [3, SYNCFS_ABOVE_FILES + 4])  # fsync per file, then one syncfs
def test_a_sync_round_marks_acknowledged_rows_synced(tmp_path: Path, files: int) -> None:
    journal = Journal(tmp_path / "cache.sqlite")
    cache = _cache(tmp_path, LocalDirStore(tmp_path / "store"), journal)

    async def main() -> None:
        for i in range(files):
            f = cache.create(f"f{i}", ATTRS)
            await cache.write(f, 0, TORN)  # not inline: their cache files are fsync'd
            await cache.commit(f)
        assert [r.synced for r in journal.dirty_records()] == [False] * files
        assert await cache.sync_acknowledged() == files
        assert [r.synced for r in journal.dirty_records()] == [True] * files
        assert await cache.sync_acknowledged() == 0

    trio.run(main)


TORN = b"maybe torn" * (INLINE_MAX_BYTES // 8)  # too large to be kept in the journal row


def _crash_with_unsynced_rows(tmp_path: Path, store: LocalDirStore) -> None:
    async def before_crash() -> None:
        cache = _cache(tmp_path, store)
        synced = cache.create("synced", ATTRS)
        await cache.write(synced, 0, b"synced bytes")
        await cache.commit(synced)
        await cache.sync_acknowledged()
        unsynced = cache.create("unsynced", ATTRS)
        await cache.write(unsynced, 0, TORN)
        await cache.commit(unsynced)
        small = cache.create("small", ATTRS)  # its content is in its row
        await cache.write(small, 0, b"small file")
        await cache.commit(small)

    trio.run(before_crash)


def test_after_a_process_crash_unsynced_rows_are_replayed(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "store")
    _crash_with_unsynced_rows(tmp_path, store)
    cache = _cache(tmp_path, store)  # same boot: the page cache kept every byte
    assert sorted(f.path for f in cache.replay_journal()) == ["small", "synced", "unsynced"]


def test_after_a_reboot_unsynced_rows_are_quarantined_not_uploaded(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "store")
    _crash_with_unsynced_rows(tmp_path, store)
    # The power loss tore the small file's cache file; its row still has the content.
    (small_file,) = [p for p in (tmp_path / "cache" / "data").iterdir() if p.read_bytes() == b"small file"]
    small_file.write_bytes(b"\0" * 3)
    journal = Journal(tmp_path / "cache.sqlite")
    journal.boot_id = "another-boot"
    cache = _cache(tmp_path, store, journal)
    replayed = {f.path: f for f in cache.replay_journal()}
    assert sorted(replayed) == ["small", "synced"]
    assert replayed["small"].pread(0, replayed["small"].size) == b"small file"
    assert sorted(r.path for r in journal.dirty_records()) == ["small", "synced"]
    kept = list((tmp_path / "cache" / "quarantine").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == TORN


def test_an_old_journal_without_sync_columns_is_upgraded_as_synced(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "cache.sqlite")
    db.execute(
        "CREATE TABLE dirty_files (file_id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL, "
        "base_key TEXT, base_etag TEXT, base_size INTEGER NOT NULL, present TEXT NOT NULL, written TEXT NOT NULL, "
        "mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, mtime REAL NOT NULL)"
    )
    db.execute("INSERT INTO dirty_files VALUES (7, 'old', 3, NULL, NULL, 0, '[[0, 3]]', '[[0, 3]]', 33188, 0, 0, 1.0)")
    db.commit()
    db.close()
    (rec,) = Journal(tmp_path / "cache.sqlite").dirty_records()
    assert rec.path == "old" and rec.synced


def test_a_write_during_an_upload_goes_to_a_private_copy(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "store")
    cache = _cache(tmp_path, store)
    uploader = Uploader(cache)
    first = os.urandom(SMALL_UPLOAD_BYTES + MiB)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader.run)
            f = cache.create("big", ATTRS)
            await cache.write(f, 0, first)
            await cache.commit(f)
            await trio.to_thread.run_sync(store.started.wait, 30)
            assert f.upload_pinned  # read in place: no snapshot copy
            assert not list(cache.upload_dir.iterdir())
            await cache.write(f, 0, b"second version")
            assert not f.upload_pinned
            store.gate.set()
            while f.uploaded_version < 2:
                await cache.wait_changed()
            # The first upload carried exactly the first version.
            assert store.get_range("vol/big", 0, len(first)) == first
            await cache.commit(f)
            await uploader.wait_uploaded(f)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert store.get_range("vol/big", 0, len(first)) == b"second version" + first[len(b"second version") :]
    assert not [p for p in (tmp_path / "cache" / "data").iterdir() if p.name.endswith(".detached")]


def test_a_random_4k_read_fetches_one_small_unit(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "store")
    content = os.urandom(8 * MiB)
    store.put_bytes("vol/obj", content, {})
    cache = _cache(tmp_path, store)

    async def main() -> None:
        f = cache.open_object("obj", store.head("vol/obj"), ATTRS)
        for offset in (12345 * 4096 % (8 * MiB), 3 * MiB + 4096, 5 * MiB):
            assert await cache.read(f, offset, 4096, ReadAhead()) == content[offset : offset + 4096]
        assert cache.store.stats.bytes_downloaded <= 3 * FETCH_UNIT_BYTES <= 3 * 4 * 4096  # <= 4x the bytes read

    trio.run(main)


def test_a_file_journaled_again_during_a_sync_round_waits_for_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "cache.sqlite")
    cache = _cache(tmp_path, LocalDirStore(tmp_path / "store"), journal)
    fsyncing, release = threading.Event(), threading.Event()
    real_fsync_paths = sync_rounds._fsync_paths

    def slow_fsync_paths(paths: list[Path]) -> None:
        fsyncing.set()
        release.wait(30)
        real_fsync_paths(paths)

    monkeypatch.setattr(sync_rounds, "_fsync_paths", slow_fsync_paths)

    async def main() -> None:
        f = cache.create("a", ATTRS)
        await cache.write(f, 0, TORN)  # not inline: the round fsyncs its cache file
        await cache.commit(f)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cache.sync_acknowledged)
            assert await trio.to_thread.run_sync(fsyncing.wait, 30)
            await cache.write(f, 0, b"second")  # not covered by the fsync already running
            await cache.commit(f)
            release.set()
        assert [r.synced for r in journal.dirty_records()] == [False]
        assert await cache.sync_acknowledged() == 1
        assert [r.synced for r in journal.dirty_records()] == [True]

    trio.run(main)


def test_a_small_file_is_made_power_safe_by_the_wal_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path / "cache.sqlite")
    cache = _cache(tmp_path, LocalDirStore(tmp_path / "store"), journal)
    fsynced: list[Path] = []
    monkeypatch.setattr(sync_rounds, "_fsync_paths", fsynced.extend)

    async def main() -> None:
        f = cache.create("small", ATTRS)
        await cache.write(f, 0, b"x" * INLINE_MAX_BYTES)
        await cache.commit(f)
        assert await cache.sync_acknowledged() == 1
        assert fsynced == []  # its content is in the row: only the WAL was synced
        (rec,) = journal.dirty_records()
        assert rec.synced and rec.inline_data == b"x" * INLINE_MAX_BYTES

    trio.run(main)
