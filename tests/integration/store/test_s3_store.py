"""S3Store against the real S3 server: every operation, multipart paths, listing pagination and
the typed errors the filesystem maps to errno."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from razorfs.store.base import CopyRange, FileRange
from razorfs.store.errors import (
    BucketNotFound,
    InvalidCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
)
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import MiB
from tests.integration.store.conftest import make_store
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3


def read_all(store: S3Store, key: str) -> bytes:
    return store.get_range(key, 0, store.head(key).size + 1)


def test_put_head_and_ranged_get_round_trip_bytes_and_metadata(s3_store: S3Store) -> None:
    data = os.urandom(1_000_003)
    put = s3_store.put_bytes("dir/file", data, {"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1700000000"})
    head = s3_store.head("dir/file")
    assert head.size == len(data)
    assert head.etag == put.etag == hashlib.md5(data).hexdigest()
    assert head.metadata == {"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1700000000"}
    assert s3_store.get_range("dir/file", 0, 10) == data[:10]
    assert s3_store.get_range("dir/file", 999_000, 5000) == data[999_000:]  # short at the end
    assert s3_store.get_range("dir/file", len(data), 10) == b""  # past the end: empty, no error
    assert s3_store.get_range("dir/file", 5, 0) == b""


def test_zero_byte_object_and_directory_marker(s3_store: S3Store) -> None:
    s3_store.put_bytes("d/", b"", {"mode": "16877"})
    s3_store.put_bytes("empty", b"", {})
    assert s3_store.head("empty").size == 0
    assert s3_store.get_range("empty", 0, 100) == b""
    assert s3_store.head("d/").size == 0


def test_get_with_if_match_fails_once_the_object_changed(s3_store: S3Store) -> None:
    first = s3_store.put_bytes("k", b"first version", {})
    assert s3_store.get_range("k", 0, 5, if_match=first.etag) == b"first"
    assert s3_store.get_range("k", 0, 5, if_match=f'"{first.etag}"') == b"first"
    s3_store.put_bytes("k", b"second version", {})
    with pytest.raises(PreconditionFailed, match=r"s3://.*/k"):
        s3_store.get_range("k", 0, 5, if_match=first.etag)


def test_missing_object_is_object_not_found_and_delete_of_it_is_fine(s3_store: S3Store) -> None:
    with pytest.raises(ObjectNotFound):
        s3_store.head("missing")
    with pytest.raises(ObjectNotFound):
        s3_store.get_range("missing", 0, 10)
    with pytest.raises(ObjectNotFound):
        s3_store.copy("missing", "elsewhere")
    s3_store.delete("missing")


def test_multipart_put_file_of_40_mib_in_5_mib_parts(s3_store: S3Store, tmp_path: Path, s3_client: Any) -> None:
    data = os.urandom(40 * MiB + 17)
    path = tmp_path / "big"
    path.write_bytes(data)
    info = s3_store.put_file("big", path, {"mode": "33188"})
    assert info.size == len(data)
    assert info.etag.endswith("-9")  # 8 full 5 MiB parts + a 17-byte tail
    assert read_all(s3_store, "big") == data
    assert s3_store.head("big").metadata == {"mode": "33188"}
    assert s3_client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


def test_put_file_below_the_threshold_is_a_single_put(s3_store: S3Store, tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)
    info = s3_store.put_file("small", path, {})
    assert "-" not in info.etag
    assert read_all(s3_store, "small") == b"x" * 1000


def test_compose_reuses_unchanged_ranges_server_side(s3_store: S3Store, tmp_path: Path) -> None:
    original = os.urandom(24 * MiB)
    s3_store.put_bytes("file", original, {"mode": "33188"})
    patch = os.urandom(100_000)
    local = tmp_path / "dirty"
    local.write_bytes(patch)
    before = s3_store.counters.snapshot()
    parts = [
        CopyRange("file", 0, 10 * MiB),
        FileRange(local, 0, len(patch)),
        CopyRange("file", 10 * MiB + len(patch), 14 * MiB - len(patch)),
        FileRange(local, 0, 10),  # appended
    ]
    info = s3_store.compose("file", parts, {"mode": "33261"})
    after = s3_store.counters.snapshot()
    expected = original[: 10 * MiB] + patch + original[10 * MiB + len(patch) :] + patch[:10]
    assert info.size == len(expected)
    assert read_all(s3_store, "file") == expected
    assert s3_store.head("file").metadata == {"mode": "33261"}
    # Only the small dirty ranges (plus what S3's 5 MiB minimum forces) crossed the node.
    uploaded = after.bytes_uploaded - before.bytes_uploaded
    assert uploaded <= 5 * MiB + len(patch) + 10
    assert uploaded < len(expected) // 3


def test_copy_keeps_or_replaces_metadata(s3_store: S3Store) -> None:
    s3_store.put_bytes("src", b"payload", {"mode": "33188", "uid": "5"})
    kept = s3_store.copy("src", "same-meta")
    replaced = s3_store.copy("src", "new-meta", {"mode": "33261"})
    assert kept.size == replaced.size == 7
    assert s3_store.head("same-meta").metadata == {"mode": "33188", "uid": "5"}
    assert s3_store.head("new-meta").metadata == {"mode": "33261"}
    assert read_all(s3_store, "new-meta") == b"payload"


def test_copy_above_the_single_copy_limit_uses_multipart_copy(s3_server: S3Server, bucket: str, s3_client: Any) -> None:
    store = make_store(s3_server, bucket, max_single_copy_bytes=6 * MiB, copy_part_size_bytes=5 * MiB)
    data = os.urandom(13 * MiB + 5)
    store.put_bytes("large", data, {"mode": "33188"})
    before = store.counters.snapshot()
    info = store.copy("large", "renamed")
    after = store.counters.snapshot()
    assert "-" in info.etag  # a multipart object
    assert after.bytes_uploaded == before.bytes_uploaded  # nothing re-uploaded
    assert read_all(store, "renamed") == data
    assert store.head("renamed").metadata == {"mode": "33188"}


def test_listing_paginates_past_1000_keys_with_delimiter(s3_store: S3Store) -> None:
    keys = [f"many/{i:05d}" for i in range(1100)] + [f"many/sub{i}/x" for i in range(3)] + ["many0", "other/y"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_store.put_bytes(k, b"x", {}), keys))
    pages = list(s3_store.list_pages("many/", delimiter="/"))
    assert len(pages) >= 2
    assert [o.key for p in pages for o in p.objects] == keys[:1100]
    assert [x for p in pages for x in p.prefixes] == ["many/sub0/", "many/sub1/", "many/sub2/"]
    flat = [o.key for p in s3_store.list_pages("", delimiter=None) for o in p.objects]
    assert flat == sorted(keys)
    after = [o.key for p in s3_store.list_pages("many/", delimiter="/", start_after="many/01095") for o in p.objects]
    assert after == keys[1096:1100]


def test_delete_many_removes_more_than_one_batch(s3_store: S3Store) -> None:
    keys = [f"gone/{i:05d}" for i in range(1005)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3_store.put_bytes(k, b"x", {}), keys[::50]))
    s3_store.delete_many([*keys, "never-existed"])  # mostly missing keys: not an error
    assert [o.key for p in s3_store.list_pages("gone/", delimiter=None) for o in p.objects] == []


def test_concurrent_workers_share_one_store(s3_store: S3Store) -> None:
    blobs = {f"c/{i}": os.urandom(50_000 + i) for i in range(32)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: s3_store.put_bytes(kv[0], kv[1], {}), blobs.items()))
        got = dict(zip(blobs, pool.map(lambda k: read_all(s3_store, k), blobs), strict=True))
    assert got == blobs
    snapshot = s3_store.counters.snapshot()
    assert snapshot.bytes_uploaded >= sum(map(len, blobs.values()))
    assert snapshot.requests >= 32 * 3


def test_wrong_secret_is_invalid_credentials_and_never_shows_the_secret(s3_server: S3Server, bucket: str) -> None:
    if s3_server.kind == "moto":
        pytest.skip("moto's standalone server accepts any credentials unless IAM auth is set up")
    store = make_store(s3_server, bucket, secret_access_key="wrong-secret-value-123")
    with pytest.raises(InvalidCredentials) as err:
        store.put_bytes("k", b"v", {})
    assert "wrong-secret-value-123" not in str(err.value)
    assert s3_server.secret_key not in str(err.value)
    with pytest.raises(InvalidCredentials):
        store.check_bucket()


def test_missing_bucket_is_bucket_not_found(s3_server: S3Server) -> None:
    store = make_store(s3_server, "no-such-bucket-razorfs")
    with pytest.raises(BucketNotFound, match="no-such-bucket-razorfs"):
        store.check_bucket()
    with pytest.raises(BucketNotFound):
        store.get_range("k", 0, 1)
    with pytest.raises(BucketNotFound):
        next(iter(store.list_pages("")))


def test_check_bucket_passes_on_an_existing_bucket(s3_store: S3Store) -> None:
    s3_store.check_bucket()


def test_no_error_text_or_repr_contains_credentials(s3_server: S3Server, bucket: str) -> None:
    store = make_store(s3_server, bucket)
    assert s3_server.secret_key not in repr(store.settings)
    failures: list[StoreError] = []
    for call in (lambda: store.head("nope"), lambda: make_store(s3_server, "no-bucket-x").check_bucket()):
        try:
            call()
        except StoreError as err:
            failures.append(err)
    assert len(failures) == 2
    for err in failures:
        assert s3_server.secret_key not in str(err) and s3_server.access_key not in str(err)


def test_sse_s3_is_requested_on_single_and_multipart_puts(moto_s3_server: S3Server, tmp_path: Path) -> None:
    # The test SeaweedFS has no SSE key configured (it answers 500), so this runs on moto.
    s3_client = moto_s3_server.client()
    bucket = "sse-test"
    s3_client.create_bucket(Bucket=bucket)
    store = make_store(moto_s3_server, bucket, sse="AES256")
    path = tmp_path / "f"
    path.write_bytes(os.urandom(9 * MiB))
    store.put_bytes("single", b"secret data", {})
    store.put_file("multi", path, {})
    store.copy("single", "copied")
    for key in ("single", "multi", "copied"):
        assert s3_client.head_object(Bucket=bucket, Key=key).get("ServerSideEncryption") == "AES256", key
    assert read_all(store, "multi") == path.read_bytes()


def test_counters_count_requests_bytes_and_only_real_errors(s3_store: S3Store) -> None:
    s3_store.put_bytes("k", b"12345", {})
    s3_store.get_range("k", 1, 3)
    with pytest.raises(ObjectNotFound):
        s3_store.head("missing")  # an answer, not a store failure
    snapshot = s3_store.counters.snapshot()
    assert (snapshot.requests, snapshot.errors, snapshot.retries) == (3, 0, 0)
    assert (snapshot.bytes_uploaded, snapshot.bytes_downloaded) == (5, 3)


def test_reading_at_the_end_or_from_an_empty_object_returns_empty(s3_store: S3Store) -> None:
    s3_store.put_bytes("empty", b"", {})
    s3_store.put_bytes("four", b"1234", {})
    assert s3_store.get_range("empty", 0, 10) == b""
    assert s3_store.get_range("four", 4, 10) == b""
    assert s3_store.get_range("four", 400, 10) == b""
