"""Uploads give way to a burst of closes: while commits keep coming less than CLOSE_LULL_S apart,
no upload starts (its botocore CPU would slow every close); the first lull, or the oldest queued
file reaching MAX_HOLD_S, lets them go. Trio's clock is a MockClock moved by hand, so "a burst"
is exact; the uploads themselves run in real threads against a local-directory store."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import trio
import trio.lowlevel
import trio.testing

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.uploader import CLOSE_LULL_S, MAX_HOLD_S, Uploader
from razorfs.store.errors import ObjectNotFound
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import ObjectAttrs

MiB = 1024 * 1024
ATTRS = ObjectAttrs(stat.S_IFREG | 0o644, 0, 0, 1_700_000_000.0)


def _cache(tmp_path: Path) -> FileCache:
    store = MeteredStore(LocalDirStore(tmp_path / "store"))
    return FileCache(tmp_path / "cache", store, Journal(tmp_path / "cache.sqlite"), 64 * MiB, lambda p: p, 1.0)


def _in_s3(tmp_path: Path, names: list[str]) -> list[str]:
    found = []
    for name in names:
        try:
            LocalDirStore(tmp_path / "store").head(name)
        except ObjectNotFound:
            continue
        found.append(name)
    return found


async def _closed(cache: FileCache, name: str) -> CachedFile:
    f = cache.create(name, ATTRS)
    await cache.write(f, 0, name.encode())
    await cache.commit(f)
    return f


async def _until_uploaded(cache: FileCache, *files: CachedFile) -> None:
    """Waits about 3 s of real time at most (the mock clock stands still meanwhile)."""
    for _ in range(300):
        if not any(f.needs_upload for f in files):
            return
        await trio.to_thread.run_sync(time.sleep, 0.01)
    raise AssertionError(f"not uploaded: {[f.path for f in files if f.needs_upload]}")


def _run(tmp_path: Path, scenario: object) -> None:
    async def main() -> None:
        cache = _cache(tmp_path)
        async with trio.open_nursery() as nursery:
            uploader = Uploader(cache)
            nursery.start_soon(uploader.run)
            await scenario(cache, uploader)  # type: ignore[operator]
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock())


def test_no_upload_starts_while_closes_come_in_a_burst_and_all_go_at_the_first_lull(tmp_path: Path) -> None:
    async def scenario(cache: FileCache, uploader: Uploader) -> None:
        clock = trio.lowlevel.current_clock()
        assert isinstance(clock, trio.testing.MockClock)
        files = []
        for i in range(10):
            files.append(await _closed(cache, f"f{i}"))
            await trio.testing.wait_all_tasks_blocked()
            clock.jump(CLOSE_LULL_S / 2)  # the next close comes before the lull
        await trio.lowlevel.checkpoint()
        await trio.testing.wait_all_tasks_blocked()
        names = [f"f{i}" for i in range(10)]
        assert _in_s3(tmp_path, names) == [] and all(f.needs_upload for f in files), "uploaded during the burst"
        clock.jump(CLOSE_LULL_S)
        await _until_uploaded(cache, *files)
        assert _in_s3(tmp_path, names) == names

    _run(tmp_path, scenario)


def test_an_endless_burst_holds_uploads_no_longer_than_max_hold(tmp_path: Path) -> None:
    async def scenario(cache: FileCache, uploader: Uploader) -> None:
        clock = trio.lowlevel.current_clock()
        assert isinstance(clock, trio.testing.MockClock)
        first = await _closed(cache, "first")
        steps = int(MAX_HOLD_S / (CLOSE_LULL_S / 2))
        for i in range(steps - 2):  # closes every half lull, until just before MAX_HOLD_S
            await cache.commit(await _closed(cache, f"g{i}"))
            await trio.testing.wait_all_tasks_blocked()
            clock.jump(CLOSE_LULL_S / 2)
        assert first.needs_upload, "the first file went before MAX_HOLD_S though closes kept coming"
        for i in range(4):  # the burst goes on past MAX_HOLD_S
            await _closed(cache, f"h{i}")
            clock.jump(CLOSE_LULL_S / 2)
        await _until_uploaded(cache, first)

    _run(tmp_path, scenario)


def test_fsync_is_never_held_by_a_burst(tmp_path: Path) -> None:
    async def scenario(cache: FileCache, uploader: Uploader) -> None:
        f = await _closed(cache, "synced")
        # wait_uploaded (fsync, flush, writethrough close) with the burst still on: the worker
        # sleeping until the lull is woken by the clock once; from then on nothing holds it.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader.wait_uploaded, f)
            await trio.testing.wait_all_tasks_blocked()
            await _closed(cache, "another close, the burst goes on")
            trio.lowlevel.current_clock().jump(CLOSE_LULL_S)  # type: ignore[attr-defined]
        assert not f.needs_upload

    _run(tmp_path, scenario)
