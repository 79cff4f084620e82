"""A cached file's rename (FileCache.move) over a LocalDirStore, the daemon "killed" at each of its
S3 calls (the store stops the run there, before or after doing the call; what was committed to the
journal stays): a restarted cache finishes the rename before serving, and the new name ends up with
the newest content, the old one gone. The FUSE-level version is
tests/integration/fs/test_rename_crash.py."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import trio

from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.uploader import Uploader
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import ObjectAttrs

ATTRS = ObjectAttrs(stat.S_IFREG | 0o644, 0, 0, 1_700_000_000.0)
OLDER = bytes(range(256)) * 1024
PATCH_AT, PATCH = 1000, b"newer, acknowledged"
NEWEST = OLDER[:PATCH_AT] + PATCH + OLDER[PATCH_AT + len(PATCH) :]


class Killed(Exception):
    """The daemon died here: the run stops, only what the journal committed remains."""


class DyingStore:
    """A LocalDirStore that stops the run at its first `method` call, before or after doing it."""

    def __init__(self, inner: LocalDirStore, method: str | None = None, after: bool = False) -> None:
        self.inner = inner
        self.method = method
        self.after = after

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.inner, name)
        if name != self.method:
            return call

        def dying(*args: Any, **kwargs: Any) -> Any:
            if self.after:
                call(*args, **kwargs)
            raise Killed(f"killed {'after' if self.after else 'before'} {name}")

        return dying


def _cache(tmp_path: Path, store: Any) -> FileCache:
    return FileCache(tmp_path / "cache", MeteredStore(store), Journal(tmp_path / "cache.sqlite"), 64 << 20,
                     lambda p: f"vol/{p}", 1.0)  # fmt: skip


@pytest.mark.parametrize(
    ("method", "after"),
    [("copy", False), ("copy", True), ("delete", False), ("delete", True), (None, False)],
    ids=["before-copy", "after-copy", "before-delete", "after-delete", "not-killed"],
)
@pytest.mark.parametrize("replacing", [False, True], ids=["new-name", "over-a-dirty-file"])
def test_rename_of_a_dirty_file_killed_at_any_step_ends_with_its_newest_content_under_the_new_name(
    tmp_path: Path, method: str | None, after: bool, replacing: bool
) -> None:
    store = LocalDirStore(tmp_path / "store")
    store.put_bytes("vol/old", OLDER, {})
    store.put_bytes("vol/new", b"the replaced file's upload", {})

    async def before_the_kill() -> None:
        cache = _cache(tmp_path, DyingStore(store, method, after))
        f = cache.open_object("old", store.head("vol/old"), ATTRS)
        await cache.write(f, PATCH_AT, PATCH)  # only the patch is cached: the rest is the base's
        await cache.commit(f)
        replaced = None
        if replacing:
            replaced = cache.open_object("new", store.head("vol/new"), ATTRS)
            await cache.write(replaced, 0, b"the replaced file's dirty version")
            await cache.commit(replaced)
        async with f.upload_lock:
            if replaced is None:
                await cache.move(f, "new")
            else:
                async with replaced.upload_lock:
                    await cache.move(f, "new", replaced)

    async def after_the_restart() -> None:
        cache = _cache(tmp_path, store)
        replayed = cache.replay_journal()
        assert [f.path for f in replayed] == ["new"]
        await cache.finish_moves()
        assert store.get_range("vol/new", 0, len(OLDER)) == OLDER, "the base was not moved to the new key"
        assert not (tmp_path / "store" / "vol" / "old").exists(), "the old object was left"
        assert cache.journal.pending_deletes() == []
        uploader = Uploader(cache)
        uploader.enqueue(replayed[0])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(uploader.run)
            await uploader.flush()
            nursery.cancel_scope.cancel()

    if method is None:
        trio.run(before_the_kill)
    else:
        with pytest.raises(Killed):
            trio.run(before_the_kill)
    trio.run(after_the_restart)
    assert store.get_range("vol/new", 0, len(OLDER)) == NEWEST


def test_a_failed_copy_moves_the_file_back_under_its_old_name(tmp_path: Path) -> None:
    from razorfs.store.errors import StoreUnavailable

    class RefusingStore(DyingStore):
        def copy(self, *args: Any) -> Any:
            raise StoreUnavailable("refused (test)")

    store = LocalDirStore(tmp_path / "store")
    store.put_bytes("vol/old", OLDER, {})

    async def main() -> None:
        cache = _cache(tmp_path, RefusingStore(store))
        f = cache.open_object("old", store.head("vol/old"), ATTRS)
        await cache.write(f, PATCH_AT, PATCH)
        await cache.commit(f)
        async with f.upload_lock:
            with pytest.raises(StoreUnavailable):
                await cache.move(f, "new")
        assert cache.get("old") is f and cache.get("new") is None
        assert [(r.path, r.base_key) for r in cache.journal.dirty_records()] == [("old", "vol/old")]

    trio.run(main)
