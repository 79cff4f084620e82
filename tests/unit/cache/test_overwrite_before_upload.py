"""A program changes a file whose acknowledged version is journaled but not uploaded, and the daemon
dies before the next close(): the replay must give back exactly the acknowledged content, never
the old row's size and ranges over the changed cache file. Each test's "kill" is a new FileCache
on the same cache dir and journal, with nothing of the old one cleaned up."""

from __future__ import annotations

import stat
from pathlib import Path

import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.readahead import ReadAhead
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import ObjectAttrs

MiB = 1024 * 1024
ATTRS = ObjectAttrs(stat.S_IFREG | 0o644, 0, 0, 1_700_000_000.0)
ACKED = bytes(range(256)) * 800  # 200 KiB: above the inline limit, so the row points at the file
NEWER = b"the newer version, acknowledged by its own close\n" * 3000


def _cache(tmp_path: Path) -> FileCache:
    store = MeteredStore(LocalDirStore(tmp_path / "store"))
    cache = FileCache(tmp_path / "cache", store, Journal(tmp_path / "cache.sqlite"), 64 * MiB, lambda p: p, 1.0)
    cache.on_needs_upload = lambda f: None  # uploads held back: the acknowledged version waits
    return cache


def _preserved(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache" / "data").iterdir() if ".acked-" in p.name)


async def _acknowledged(cache: FileCache, name: str = "f", content: bytes = ACKED) -> CachedFile:
    f = cache.create(name, ATTRS)
    await cache.write(f, 0, content)
    await cache.commit(f)
    await cache.sync_round()  # what close() waits for
    return f


def _replayed_content(tmp_path: Path) -> bytes:
    async def main() -> bytes:
        cache = _cache(tmp_path)
        (f,) = cache.replay_journal()
        return await cache.read(f, 0, f.size, ReadAhead())

    return trio.run(main)


def test_an_o_trunc_overwrite_killed_before_close_replays_the_acknowledged_content(tmp_path: Path) -> None:
    async def before_the_kill() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.truncate(f, 0)
        await cache.write(f, 0, b"partial new content")
        await cache.write(f, 300_000, b"past the old end")

    trio.run(before_the_kill)
    assert _preserved(tmp_path) != []
    assert _replayed_content(tmp_path) == ACKED
    assert _preserved(tmp_path) == [], "the preserved file was put back at the cache file"


def test_an_in_place_write_killed_before_close_replays_the_acknowledged_content(tmp_path: Path) -> None:
    async def before_the_kill() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.write(f, 1000, b"X" * 5000)
        await cache.truncate(f, 150_000)

    trio.run(before_the_kill)
    assert _replayed_content(tmp_path) == ACKED


def test_a_stale_preserved_file_is_dropped_and_the_newer_row_replayed(tmp_path: Path) -> None:
    """Killed after the next close() journaled the newer version, before the round that deletes
    the older version's preserved file."""

    async def before_the_kill() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.truncate(f, 0)
        await cache.write(f, 0, NEWER)
        await cache.commit(f)

    trio.run(before_the_kill)
    assert len(_preserved(tmp_path)) == 1
    assert _replayed_content(tmp_path) == NEWER
    assert _preserved(tmp_path) == []


def test_without_a_preserved_file_the_cache_file_is_the_rows_content(tmp_path: Path) -> None:
    async def before_the_kill() -> None:
        await _acknowledged(_cache(tmp_path))

    trio.run(before_the_kill)
    assert _preserved(tmp_path) == []
    assert _replayed_content(tmp_path) == ACKED


def test_the_preserved_file_goes_after_the_round_that_syncs_the_newer_row(tmp_path: Path) -> None:
    async def main() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.write(f, 0, b"changed")
        await cache.write(f, 10, b"changed again")  # one preserved copy per acknowledged version
        assert len(_preserved(tmp_path)) == 1
        await cache.commit(f)
        assert len(_preserved(tmp_path)) == 1, "deleted before the newer row is power-safe"
        await cache.sync_round()
        assert _preserved(tmp_path) == []

    trio.run(main)


def test_a_replayed_file_changed_again_and_killed_again_keeps_the_acknowledged_content(tmp_path: Path) -> None:
    async def before_the_kill() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.truncate(f, 0)

    async def after_the_first_replay() -> None:
        cache = _cache(tmp_path)
        (f,) = cache.replay_journal()
        await cache.write(f, 0, b"overwritten after the replay, never closed")

    trio.run(before_the_kill)
    trio.run(after_the_first_replay)
    assert _replayed_content(tmp_path) == ACKED


SMALL_ACKED = b"a small acknowledged file, journaled with its content inline\n" * 20


async def _upload(cache: FileCache, f: CachedFile) -> None:
    async with f.upload_lock:
        await cache.upload(f)


def _in_store(tmp_path: Path, key: str) -> bytes:
    return LocalDirStore(tmp_path / "store").get_object(key)


def test_an_upload_starting_during_an_o_trunc_overwrite_sends_the_acknowledged_content(tmp_path: Path) -> None:
    """The upload of the acknowledged version was queued (or is a retry) and starts after a program
    truncated the file and began writing: S3 gets what close() acknowledged, never the half-written
    newer content; the newer content goes with its own close()."""

    async def main() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.truncate(f, 0)
        await cache.write(f, 0, b"partial new content")
        await _upload(cache, f)
        assert _in_store(tmp_path, "f") == ACKED
        assert f.dirty and not f.needs_upload, "the changes in progress are not acknowledged yet"
        assert cache.journal.dirty_records() == [], "the acknowledged version is in S3: no row needed"
        await cache.write(f, 19, b", finished")
        await cache.commit(f)
        await _upload(cache, f)
        assert _in_store(tmp_path, "f") == b"partial new content, finished"
        assert not f.dirty

    trio.run(main)


def test_an_upload_starting_during_an_in_place_write_sends_the_acknowledged_content(tmp_path: Path) -> None:
    async def main() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.write(f, 1000, b"X" * 5000)
        await _upload(cache, f)
        assert _in_store(tmp_path, "f") == ACKED
        await cache.commit(f)
        await _upload(cache, f)
        assert _in_store(tmp_path, "f") == ACKED[:1000] + b"X" * 5000 + ACKED[6000:]

    trio.run(main)


def test_an_inline_row_being_changed_uploads_the_rows_content(tmp_path: Path) -> None:
    async def main() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache, "small", SMALL_ACKED)
        await cache.truncate(f, 0)
        await cache.write(f, 0, b"half")
        await _upload(cache, f)
        assert _in_store(tmp_path, "small") == SMALL_ACKED

    trio.run(main)


def test_killed_after_the_acknowledged_upload_the_object_holds_the_acknowledged_content(tmp_path: Path) -> None:
    async def before_the_kill() -> None:
        cache = _cache(tmp_path)
        f = await _acknowledged(cache)
        await cache.truncate(f, 0)
        await cache.write(f, 0, b"never closed")
        await _upload(cache, f)
        await cache.sync_round()

    trio.run(before_the_kill)
    assert _cache(tmp_path).replay_journal() == []
    assert _in_store(tmp_path, "f") == ACKED
