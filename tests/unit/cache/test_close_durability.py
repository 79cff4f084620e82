"""close() is power-safe when it returns (DESIGN: "durable on the local disk"): `wait_power_safe`
returns only after a sync round covering the file, the closes that arrive together share rounds
(group commit), and a round the local disk fails is reported to the closers."""

from __future__ import annotations

import errno
import stat
from pathlib import Path

import pytest
import trio

from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.uploader import Uploader
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import ObjectAttrs

MiB = 1024 * 1024
ATTRS = ObjectAttrs(stat.S_IFREG | 0o644, 0, 0, 1_700_000_000.0)


class HeldStore(LocalDirStore):
    """Uploads never finish during the test (a slow S3): only the local sync can make a close safe."""

    def put_file(self, key, path, metadata):  # type: ignore[no-untyped-def]
        raise AssertionError("no upload expected in this test")


def _cache(tmp_path: Path) -> tuple[FileCache, Journal]:
    journal = Journal(tmp_path / "cache.sqlite")
    cache = FileCache(
        tmp_path / "cache", MeteredStore(HeldStore(tmp_path / "store")), journal, 64 * MiB, lambda p: p, 1.0
    )
    cache.on_needs_upload = lambda f: None  # no uploader workers: only the sync rounds run
    return cache, journal


async def _sync_rounds(cache: FileCache, rounds: list[int]) -> None:
    while True:
        await cache.sync_wanted.wait()
        rounds.append(await cache.sync_round())


def test_a_close_returns_after_its_row_and_file_are_synced(tmp_path: Path) -> None:
    cache, journal = _cache(tmp_path)

    async def main() -> None:
        rounds: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sync_rounds, cache, rounds)
            f = cache.create("a", ATTRS)
            await cache.write(f, 0, b"acknowledged")
            await cache.commit(f)
            assert [r.synced for r in journal.dirty_records()] == [False]
            await cache.wait_power_safe(f)
            assert [r.synced for r in journal.dirty_records()] == [True]
            await cache.wait_power_safe(f)  # nothing new: returns without another round
            assert rounds == [1]
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_concurrent_closes_share_sync_rounds(tmp_path: Path) -> None:
    cache, journal = _cache(tmp_path)

    async def close_one(i: int) -> None:
        f = cache.create(f"f{i}", ATTRS)
        await cache.write(f, 0, b"x" * 4096)
        await cache.commit(f)
        await cache.wait_power_safe(f)

    async def main() -> None:
        rounds: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sync_rounds, cache, rounds)
            async with trio.open_nursery() as closers:
                for i in range(30):
                    closers.start_soon(close_one, i)
            nursery.cancel_scope.cancel()
        assert all(r.synced for r in journal.dirty_records())
        assert sum(rounds) == 30 and len(rounds) < 30, rounds

    trio.run(main)


def test_a_failed_round_fails_the_waiting_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, journal = _cache(tmp_path)

    def disk_error(*args: object) -> None:
        raise OSError(errno.EIO, "disk gone")

    # Both fsyncs of a round fail (a small file's content rides in its row: only the WAL is synced).
    monkeypatch.setattr("razorfs.cache.sync_rounds._fsync_paths", disk_error)
    monkeypatch.setattr(journal, "sync_wal", disk_error)

    async def main() -> None:
        f = cache.create("a", ATTRS)
        await cache.write(f, 0, b"data")
        await cache.commit(f)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_round_once, cache)
            with pytest.raises(OSError) as err:
                await cache.wait_power_safe(f)
            assert err.value.errno == errno.EIO
        assert [r.synced for r in journal.dirty_records()] == [False]  # kept for the next round

    trio.run(main)


async def _round_once(cache: FileCache) -> None:
    await cache.sync_wanted.wait()
    with pytest.raises(OSError):
        await cache.sync_round()


def test_the_uploader_runs_a_round_as_soon_as_a_closer_waits(tmp_path: Path) -> None:
    cache, journal = _cache(tmp_path)
    uploader = Uploader(cache, workers=0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader.run)
            f = cache.create("a", ATTRS)
            await cache.write(f, 0, b"data")
            await cache.commit(f)
            with trio.fail_after(0.5):  # well before the 1 s periodic round
                await cache.wait_power_safe(f)
            assert [r.synced for r in journal.dirty_records()] == [True]
            nursery.cancel_scope.cancel()

    trio.run(main)
