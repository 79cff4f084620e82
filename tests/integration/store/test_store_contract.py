"""The same behaviour from both backends: the filesystem's fast tests run on LocalDirStore, so it
must answer like S3 does for everything the filesystem relies on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from razorfs.store.base import CopyRange, FileRange, ObjectStore
from razorfs.store.errors import KeyConflict, ObjectNotFound, PreconditionFailed
from razorfs.store.localdir import LocalDirStore
from razorfs.store.s3 import S3Store
from tests.integration.store.conftest import make_store
from tests.realparts.s3server import S3Server


@pytest.fixture(params=["localdir", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "localdir":
        yield LocalDirStore(tmp_path / "objects")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    yield make_store(server, request.getfixturevalue("bucket"))


def keys_and_prefixes(store: ObjectStore, prefix: str, delimiter: str | None = "/") -> tuple[list[str], list[str]]:
    pages = list(store.list_pages(prefix, delimiter=delimiter))
    return [o.key for p in pages for o in p.objects], [x for p in pages for x in p.prefixes]


def test_listing_order_and_rollup_match_s3(store: ObjectStore) -> None:
    keys = ["a/", "a/b", "a-c", "a0", "ä/x", "b/c/d", "a/d/e"]
    for key in keys:
        store.put_bytes(key, b"", {})
    assert keys_and_prefixes(store, "") == (["a-c", "a0"], ["a/", "b/", "ä/"])
    assert keys_and_prefixes(store, "a") == (["a-c", "a0"], ["a/"])
    assert keys_and_prefixes(store, "a/") == (["a/", "a/b"], ["a/d/"])
    # Without a delimiter SeaweedFS walks its directory tree ("a/..." before "a-c"), so only the
    # set of keys is the same everywhere; callers must not rely on a flat listing's order.
    assert sorted(keys_and_prefixes(store, "", None)[0]) == sorted(keys)


def test_pages_of_one_key_answer_whether_anything_is_below_a_prefix(store: ObjectStore) -> None:
    for key in ["d/a/x", "d/b", "d/c"]:
        store.put_bytes(key, b"", {})
    first = next(iter(store.list_pages("d/", "/", page_keys=1)))
    assert 1 <= len(first.objects) + len(first.prefixes) <= 1
    assert keys_and_prefixes(store, "d/") == (["d/b", "d/c"], ["d/a/"])
    pages = list(store.list_pages("d/", "/", page_keys=1))
    assert [o.key for p in pages for o in p.objects] == ["d/b", "d/c"]
    assert [x for p in pages for x in p.prefixes] == ["d/a/"]
    empty = next(iter(store.list_pages("e/", "/", page_keys=1)))
    assert not empty.objects and not empty.prefixes


def test_a_key_that_is_both_a_file_and_a_prefix_coexists_or_is_a_key_conflict(store: ObjectStore) -> None:
    store.put_bytes("x/y", b"child", {})
    try:
        store.put_bytes("x", b"file", {})
    except KeyConflict:
        assert isinstance(store, S3Store)  # SeaweedFS's filer: one name is a file or a directory
        return
    assert keys_and_prefixes(store, "") == (["x"], ["x/"])
    assert store.get_range("x", 0, 10) == b"file"


def test_reads_past_the_end_and_zero_length_return_empty(store: ObjectStore) -> None:
    store.put_bytes("k", b"0123456789", {})
    assert store.get_range("k", 8, 100) == b"89"
    assert store.get_range("k", 10, 5) == b""
    assert store.get_range("k", 3, 0) == b""


def test_if_match_and_missing_keys_raise_the_same_typed_errors(store: ObjectStore) -> None:
    old = store.put_bytes("k", b"one", {})
    new = store.put_bytes("k", b"two", {})
    assert old.etag != new.etag and '"' not in new.etag
    assert store.head("k").etag == new.etag
    with pytest.raises(PreconditionFailed):
        store.get_range("k", 0, 3, if_match=old.etag)
    with pytest.raises(ObjectNotFound):
        store.head("nope")
    store.delete("nope")


def test_get_object_returns_the_whole_object_and_honours_if_match(store: ObjectStore, tmp_path: Path) -> None:
    small = store.put_bytes("k", b"whole", {})
    assert store.get_object("k") == b"whole"
    assert store.get_object("k", if_match=small.etag) == b"whole"
    store.put_bytes("k", b"changed", {})
    with pytest.raises(PreconditionFailed):
        store.get_object("k", if_match=small.etag)
    with pytest.raises(ObjectNotFound):
        store.get_object("nope")
    big = os.urandom(6 * 1024 * 1024 + 3)  # a multipart object (no whole-object checksum on S3)
    (tmp_path / "big").write_bytes(big)
    store.compose("big", [FileRange(tmp_path / "big", 0, len(big))], {})
    assert store.get_object("big") == big


def test_metadata_is_lower_case_and_copy_keeps_or_replaces_it(store: ObjectStore) -> None:
    store.put_bytes("src", b"x", {"Mode": "33188", "uid": "7"})
    assert store.head("src").metadata == {"mode": "33188", "uid": "7"}
    store.copy("src", "kept")
    store.copy("src", "replaced", {"mode": "33261"})
    assert store.head("kept").metadata == {"mode": "33188", "uid": "7"}
    assert store.head("replaced").metadata == {"mode": "33261"}


def test_compose_onto_its_own_source(store: ObjectStore, tmp_path: Path) -> None:
    mib = 1024 * 1024
    original = os.urandom(12 * mib)
    store.put_bytes("f", original, {})
    local = tmp_path / "patch"
    local.write_bytes(b"N" * 1000)
    parts = [CopyRange("f", 0, 6 * mib), FileRange(local, 0, 1000), CopyRange("f", 6 * mib, 6 * mib)]
    info = store.compose("f", parts, {"mode": "1"})
    expected = original[: 6 * mib] + b"N" * 1000 + original[6 * mib :]
    assert info.size == len(expected) == store.head("f").size
    assert store.get_range("f", 0, len(expected)) == expected
