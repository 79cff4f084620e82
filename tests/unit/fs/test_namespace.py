"""The namespace without FUSE, over a LocalDirStore behind a switchable outage: lookups whose cached
answer expired are served from the cache while S3 cannot be reached (quickly, not after the retry
budget), names the cache never saw still go to S3, keys that cannot be file names are left
out of listings, and a large directory is re-listed once it gets many lookups."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import trio

from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metadata_cache import MetadataCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.fs import listings, path_lookup
from razorfs.fs.namespace import Namespace
from razorfs.fs.node import is_valid_name
from razorfs.store.base import ListingPage, ObjectInfo
from razorfs.store.errors import StoreUnavailable
from razorfs.store.localdir import LocalDirStore
from razorfs.store.object_attrs import AttrDefaults

TTL_S = 0.05


class OutageStore:
    """A LocalDirStore whose reads can fail (a partition) or hang, and whose listings can carry
    keys a local directory cannot hold."""

    def __init__(self, inner: LocalDirStore) -> None:
        self.inner = inner
        self.down = False
        self.hang_s = 0.0
        self.extra_objects: list[ObjectInfo] = []
        self.reads = 0
        self.heads = 0
        self.listed_prefixes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _read(self) -> None:
        self.reads += 1
        if self.hang_s:
            time.sleep(self.hang_s)
        if self.down:
            raise StoreUnavailable("connection refused (test partition)")

    def head(self, key: str) -> ObjectInfo:
        self._read()
        self.heads += 1
        return self.inner.head(key)

    def list_pages(
        self, prefix: str, delimiter: str | None = "/", start_after: str | None = None, page_keys: int | None = None
    ) -> Iterator[ListingPage]:
        self._read()
        self.listed_prefixes.append(prefix)
        pages = list(self.inner.list_pages(prefix, delimiter, start_after, page_keys))
        extra = [o for o in self.extra_objects if o.key.startswith(prefix)]
        return iter([*pages, ListingPage(extra, [])])

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        return self.inner.put_bytes(key, data, metadata)


def _namespace(tmp_path: Path) -> tuple[Namespace, OutageStore]:
    (tmp_path / "cache").mkdir()
    store = OutageStore(LocalDirStore(tmp_path / "store"))
    metered = MeteredStore(store)  # type: ignore[arg-type]
    cache = FileCache(
        tmp_path / "cache", metered, Journal(tmp_path / "cache.sqlite"), 64 << 20, lambda p: f"vol/{p}", TTL_S
    )
    ns = Namespace(metered, cache, MetadataCache(TTL_S), lambda p: f"vol/{p}", AttrDefaults())
    return ns, store


def test_valid_names() -> None:
    assert is_valid_name("a") and is_valid_name("x" * 255) and is_valid_name("é" * 127)
    for bad in ("", ".", "..", "a/b", "a\0b", "x" * 256, "é" * 128):
        assert not is_valid_name(bad), bad


def test_listings_leave_out_keys_that_cannot_be_file_names(tmp_path: Path) -> None:
    ns, store = _namespace(tmp_path)
    store.inner.put_bytes("vol/ok.txt", b"ok", {})
    store.extra_objects = [ObjectInfo(f"vol/{name}", 1, "e", 0.0) for name in ("n" * 300, ".", "..", "z\0")]

    async def main() -> None:
        for _ in range(2):
            assert sorted(await ns.listing("", fresh=True)) == ["ok.txt"]
        assert ns.skipped_keys == 4  # each counted (and logged) once

    trio.run(main)


def test_expired_metadata_is_served_from_the_cache_while_s3_is_unreachable(tmp_path: Path) -> None:
    ns, store = _namespace(tmp_path)
    store.inner.put_bytes("vol/d/", b"", {})
    store.inner.put_bytes("vol/d/a.txt", b"hello", {})

    async def main() -> None:
        assert sorted(await ns.listing("d")) == ["a.txt"]
        a = await ns.stat("d/a.txt")
        assert a is not None and a.size == 5
        assert (await ns.stat("d")) is not None
        await trio.sleep(TTL_S * 2)
        store.down = True
        started = time.monotonic()
        node = await ns.stat("d/a.txt")
        assert node is not None and node.size == 5
        assert await ns.stat("d/new.txt") is None  # absent from the cached listing: create may proceed
        d = await ns.stat("d")
        assert d is not None and d.is_dir
        assert (await ns.stat("")).is_dir
        assert sorted(await ns.listing("d")) == ["a.txt"]
        assert ns.store.unreachable
        reads_during = store.reads
        for _ in range(20):
            assert await ns.stat("d/other") is None
        assert store.reads == reads_during, "S3 was asked again while remembered as unreachable"
        assert time.monotonic() - started < 1.0
        with pytest.raises(StoreUnavailable):  # nothing cached about it: only S3 could answer
            await ns.stat("elsewhere/x")
        store.down = False
        ns.store.note_reachable()
        store.inner.put_bytes("vol/d/new.txt", b"remote", {})
        await trio.sleep(TTL_S * 2)
        fresh = await ns.stat("d/new.txt")
        assert fresh is not None and fresh.size == 6  # once S3 answers, it decides again

    trio.run(main)


def test_a_hanging_revalidation_falls_back_to_the_cache_after_a_short_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(path_lookup, "REVALIDATE_TIMEOUT_S", 0.2)
    ns, store = _namespace(tmp_path)
    store.inner.put_bytes("vol/f.txt", b"data", {})

    async def main() -> None:
        assert (await ns.stat("f.txt")) is not None
        await trio.sleep(TTL_S * 2)
        store.hang_s = 1.0
        started = time.monotonic()
        node = await ns.stat("f.txt")
        assert node is not None and node.size == 4
        assert time.monotonic() - started < 0.8
        assert ns.store.unreachable

    trio.run(main)


def test_a_large_directory_busy_with_new_names_is_relisted_instead_of_a_head_per_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 80 entries: "large" above a limit of 20, re-listed after 80 / 40 = 2 lookups.
    monkeypatch.setattr(listings, "RELIST_MAX_ENTRIES", 20)
    monkeypatch.setattr(listings, "RELIST_ENTRIES_PER_LOOKUP", 40)
    ns, store = _namespace(tmp_path)
    for i in range(80):
        store.inner.put_bytes(f"vol/big/o{i:03d}", b"x", {})

    def full_lists() -> int:
        return store.listed_prefixes.count("vol/big/")

    async def main() -> None:
        assert len(await ns.listing("big")) == 80
        await trio.sleep(TTL_S * 2)  # expired, and no lookup while it was fresh: a quiet folder
        for i in range(2):
            heads = store.heads
            assert await ns.stat(f"big/new{i}") is None
            assert store.heads > heads and full_lists() == 1  # asked about the one name
        heads = store.heads
        for i in range(2, 40):  # the third lookup re-lists; the listing answers the rest
            assert await ns.stat(f"big/new{i}") is None
        assert full_lists() >= 2 and store.heads == heads
        # A new listing that answered lookups while fresh is re-listed at once when it expires.
        await trio.sleep(TTL_S * 2)
        lists = full_lists()
        assert await ns.stat("big/later") is None
        assert full_lists() == lists + 1 and store.heads == heads

    trio.run(main)
