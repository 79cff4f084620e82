"""The cache tier without FUSE, over a LocalDirStore: journal replay after a "crash", dirty data
never evicted while clean data keeps the limit, and compose reusing unchanged ranges."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import trio

from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.readahead import ReadAhead
from razorfs.cache.upload_builder import COMPOSE_MIN_BYTES
from razorfs.cache.uploader import Uploader
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import ObjectAttrs

MiB = 1024 * 1024
ATTRS = ObjectAttrs(stat.S_IFREG | 0o644, 0, 0, 1_700_000_000.0)


def _cache(tmp_path: Path, store: LocalDirStore, limit: int = 64 * MiB) -> tuple[FileCache, Uploader]:
    cache = FileCache(tmp_path / "cache", MeteredStore(store), Journal(tmp_path / "cache.sqlite"), limit,
                      lambda p: f"vol/{p}", 1.0)  # fmt: skip
    return cache, Uploader(cache)


def test_acknowledged_files_are_replayed_and_uploaded_after_a_crash(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "store")
    (tmp_path / "cache").mkdir()

    async def before_crash() -> None:
        cache, _uploader = _cache(tmp_path, store)  # the uploader never runs: nothing reaches S3
        for i in range(5):
            f = cache.create(f"f{i}", ATTRS)
            await cache.write(f, 0, f"content {i}".encode())
            await cache.commit(f)
        unacknowledged = cache.create("not-closed", ATTRS)
        await cache.write(unacknowledged, 0, b"lost")

    async def after_restart() -> None:
        cache, uploader = _cache(tmp_path, store)
        replayed = cache.replay_journal()
        assert sorted(f.path for f in replayed) == [f"f{i}" for i in range(5)]
        for f in replayed:
            uploader.enqueue(f)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader.run)
            await uploader.flush()
            nursery.cancel_scope.cancel()

    trio.run(before_crash)
    trio.run(after_restart)
    for i in range(5):
        assert store.get_range(f"vol/f{i}", 0, 100) == f"content {i}".encode()
    assert store.head("vol/f0").metadata["mode"] == str(ATTRS.mode)


def test_clean_data_is_evicted_to_keep_the_limit_but_dirty_data_stays(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "store")
    for i in range(6):
        store.put_bytes(f"vol/clean{i}", bytes([i]) * 4 * MiB, {})

    async def main() -> None:
        cache, _ = _cache(tmp_path, store, limit=12 * MiB)
        dirty = cache.create("dirty", ATTRS)
        await cache.write(dirty, 0, os.urandom(6 * MiB))
        for i in range(6):
            f = cache.open_object(f"clean{i}", store.head(f"vol/clean{i}"), ATTRS)
            assert await cache.read(f, 0, 4 * MiB, ReadAhead()) == bytes([i]) * 4 * MiB
            assert cache.cached_bytes <= 12 * MiB
        assert dirty.present.total() == 6 * MiB  # never evicted
        assert cache.counters.evicted_bytes >= 12 * MiB
        again = cache.get("clean0")
        assert again is not None
        assert await cache.read(again, MiB, 10, ReadAhead()) == bytes([0]) * 10  # fetched again

    trio.run(main)


def test_a_small_change_to_a_large_object_is_uploaded_with_compose(tmp_path: Path) -> None:
    store = LocalDirStore(tmp_path / "store")
    size = COMPOSE_MIN_BYTES + 3 * MiB
    original = os.urandom(size)
    store.put_bytes("vol/big", original, {})

    async def main() -> None:
        cache, uploader = _cache(tmp_path, store)
        f = cache.open_object("big", store.head("vol/big"), ATTRS)
        await cache.write(f, 10 * MiB + 5, b"changed")
        await cache.truncate(f, size - MiB)
        await cache.commit(f)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader.run)
            await uploader.wait_uploaded(f)
            nursery.cancel_scope.cancel()
        stats = cache.store.stats
        assert stats.bytes_downloaded <= 16 * MiB, "only the changed segments were fetched"
        assert stats.bytes_uploaded <= 16 * MiB

    trio.run(main)
    expected = (original[: 10 * MiB + 5] + b"changed" + original[10 * MiB + 12 :])[: size - MiB]
    assert store.get_range("vol/big", 0, size) == expected
