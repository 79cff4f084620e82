"""LocalDirStore behaves like an S3 bucket for everything the filesystem relies on."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from razorfs.store.base import CopyRange, FileRange
from razorfs.store.errors import InvalidRequest, ObjectNotFound, PreconditionFailed
from razorfs.store.localdir import LocalDirStore


@pytest.fixture
def store(tmp_path: Path) -> LocalDirStore:
    return LocalDirStore(tmp_path / "store", page_keys=7)


def test_put_then_head_and_get_return_bytes_metadata_and_md5_etag(store: LocalDirStore) -> None:
    data = os.urandom(5000)
    put = store.put_bytes("dir/file", data, {"Mode": "33188", "uid": "1000"})
    head = store.head("dir/file")
    assert head.size == 5000
    assert head.etag == put.etag == hashlib.md5(data).hexdigest()
    assert head.metadata == {"mode": "33188", "uid": "1000"}
    assert store.get_range("dir/file", 0, 5000) == data
    assert store.get_range("dir/file", 4990, 100) == data[4990:]
    assert store.get_range("dir/file", 6000, 10) == b""


def test_get_range_with_stale_etag_raises_precondition_failed(store: LocalDirStore) -> None:
    first = store.put_bytes("k", b"one", {})
    store.put_bytes("k", b"two", {})
    with pytest.raises(PreconditionFailed):
        store.get_range("k", 0, 3, if_match=first.etag)
    assert store.get_range("k", 0, 3, if_match=f'"{store.head("k").etag}"') == b"two"


def test_missing_key_raises_object_not_found(store: LocalDirStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.head("nope")
    with pytest.raises(ObjectNotFound):
        store.get_range("a/b/c", 0, 1)
    store.delete("nope")  # deleting a missing key is not an error


def test_file_key_and_prefix_and_marker_coexist(store: LocalDirStore) -> None:
    store.put_bytes("a", b"file", {})
    store.put_bytes("a/", b"", {"mode": "16877"})
    store.put_bytes("a/b", b"child", {})
    store.put_bytes("a-c", b"sibling", {})
    store.put_bytes("a//x", b"double", {})
    pages = list(store.list_pages("", delimiter="/"))
    assert [o.key for p in pages for o in p.objects] == ["a", "a-c"]
    assert [x for p in pages for x in p.prefixes] == ["a/"]
    inner = list(store.list_pages("a/", delimiter="/"))
    assert [o.key for p in inner for o in p.objects] == ["a/", "a/b"]
    assert [x for p in inner for x in p.prefixes] == ["a//"]
    flat = [o.key for p in store.list_pages("", delimiter=None) for o in p.objects]
    assert flat == sorted(["a", "a/", "a/b", "a-c", "a//x"])


def test_listing_pages_in_key_order_and_honours_start_after(store: LocalDirStore) -> None:
    keys = [f"d/{i:03d}" for i in range(30)] + [f"d/sub{i}/x" for i in range(5)]
    for key in keys:
        store.put_bytes(key, b"x", {})
    pages = list(store.list_pages("d/", delimiter="/"))
    assert all(len(p.objects) + len(p.prefixes) <= 7 for p in pages)
    assert len(pages) == 5
    assert [o.key for p in pages for o in p.objects] == keys[:30]
    assert [x for p in pages for x in p.prefixes] == [f"d/sub{i}/" for i in range(5)]
    after = [o.key for p in store.list_pages("d/0", delimiter="/", start_after="d/025") for o in p.objects]
    assert after == keys[26:30]


def test_delete_removes_empty_prefixes_from_listings(store: LocalDirStore) -> None:
    store.put_bytes("x/y/z", b"1", {})
    store.delete_many(["x/y/z", "missing"])
    assert [p.prefixes for p in store.list_pages("", "/")] == [[]]


def test_copy_keeps_or_replaces_metadata(store: LocalDirStore) -> None:
    store.put_bytes("src", b"payload", {"mode": "33188"})
    assert store.copy("src", "dst1").metadata == {"mode": "33188"}
    assert store.copy("src", "dst2", {"mode": "33261"}).metadata == {"mode": "33261"}
    assert store.get_range("dst2", 0, 100) == b"payload"


def test_compose_joins_copied_and_local_ranges_even_onto_its_source(store: LocalDirStore, tmp_path: Path) -> None:
    original = os.urandom(10_000)
    store.put_bytes("big", original, {})
    local = tmp_path / "patch"
    patch = os.urandom(1000)
    local.write_bytes(b"\0" * 500 + patch)
    parts = [CopyRange("big", 0, 4000), FileRange(local, 500, 1000), CopyRange("big", 5000, 5000)]
    info = store.compose("big", parts, {"mode": "1"})
    expected = original[:4000] + patch + original[5000:]
    assert store.get_range("big", 0, 20_000) == expected
    assert info.size == len(expected)
    with pytest.raises(InvalidRequest):
        store.compose("other", [CopyRange("big", 9000, 5000)], {})


def test_put_file_and_concurrent_overwrites_never_show_a_mix(store: LocalDirStore, tmp_path: Path) -> None:
    blobs = [bytes([i]) * 200_000 for i in range(8)]
    paths = []
    for i, blob in enumerate(blobs):
        p = tmp_path / f"src{i}"
        p.write_bytes(blob)
        paths.append(p)
    seen: list[bytes] = []
    store.put_file("k", paths[0], {})

    def writer(i: int) -> None:
        for _ in range(5):
            store.put_file("k", paths[i], {})

    def reader() -> None:
        for _ in range(50):
            seen.append(store.get_range("k", 0, 200_000))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s in blobs for s in seen)
    assert not list((store.root / "tmp").iterdir())
