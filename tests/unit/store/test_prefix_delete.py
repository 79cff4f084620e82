"""delete_prefix removes exactly the objects under a prefix, in batches, and refuses a whole bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from razorfs.store.base import ListingPage, ObjectInfo
from razorfs.store.errors import BucketNotFound, InvalidRequest, StoreError
from razorfs.store.localdir import LocalDirStore
from razorfs.store.prefix_delete import delete_prefix


@pytest.fixture
def store(tmp_path: Path) -> LocalDirStore:
    return LocalDirStore(tmp_path / "store", page_keys=7)


def test_delete_prefix_deletes_every_object_under_the_prefix_and_nothing_beside_it(store: LocalDirStore) -> None:
    for n in range(30):
        store.put_bytes(f"vol/d{n % 3}/f{n}", b"x", {})
    store.put_bytes("vol/", b"", {})
    store.put_bytes("vol.razorfs-volume.json", b"{}", {})
    store.put_bytes("volume2/keep", b"y", {})
    assert delete_prefix(store, "vol/") == 31
    remaining = [o.key for page in store.list_pages("", delimiter=None) for o in page.objects]
    assert sorted(remaining) == ["vol.razorfs-volume.json", "volume2/keep"]


def test_delete_prefix_of_an_empty_prefix_deletes_nothing(store: LocalDirStore) -> None:
    assert delete_prefix(store, "nothing/") == 0


def test_delete_prefix_refuses_the_whole_bucket(store: LocalDirStore) -> None:
    store.put_bytes("a", b"x", {})
    with pytest.raises(InvalidRequest):
        delete_prefix(store, "")
    assert store.head("a").size == 1


class _StubbornStore(LocalDirStore):
    """Acknowledges deletes and keeps the objects (a server that misbehaves)."""

    def delete_many(self, keys: object) -> None:
        return None


def test_delete_prefix_stops_when_deleted_objects_are_listed_again(tmp_path: Path) -> None:
    store = _StubbornStore(tmp_path / "store")
    store.put_bytes("vol/a", b"x", {})
    with pytest.raises(StoreError, match="remain after deletion"):
        delete_prefix(store, "vol/")


class _MissingBucket(LocalDirStore):
    def list_pages(
        self, prefix: str, delimiter: str | None = "/", start_after: str | None = None
    ) -> Iterator[ListingPage]:
        raise BucketNotFound("list s3://gone: bucket 'gone' does not exist")
        yield ListingPage([ObjectInfo("never", 0, "", 0.0)], [])


def test_delete_prefix_counts_a_missing_bucket_as_empty(tmp_path: Path) -> None:
    assert delete_prefix(_MissingBucket(tmp_path / "store"), "vol/") == 0
