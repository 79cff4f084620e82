"""Dynamically provisioned volume IDs round-trip and never carry a traversal."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from razorfs.csi.validation import check_volume_id
from razorfs.csi.volume_handle import PREFIX_NAME_MAX, VolumeHandle, parse_volume_id, short_segment


def test_volume_id_round_trips_every_field() -> None:
    handle = VolumeHandle("http://127.0.0.1:8333", "us-east-1", True, "data", "team/a:b/pvc-1")
    assert parse_volume_id(handle.volume_id) == handle
    assert "/" not in handle.volume_id
    assert check_volume_id(handle.volume_id) == handle.volume_id


@given(
    endpoint=st.sampled_from(["http://h:1", "https://s3.example.com", "http://[::1]:9000"]),
    region=st.text(max_size=12),
    bucket=st.from_regex(r"[a-z0-9][a-z0-9.-]{2,20}", fullmatch=True),
    prefix=st.from_regex(r"[A-Za-z0-9_:%-]{1,10}(/[A-Za-z0-9_:%-]{1,10}){0,3}", fullmatch=True),
    path_style=st.booleans(),
)
def test_any_handle_round_trips(endpoint: str, region: str, bucket: str, prefix: str, path_style: bool) -> None:
    handle = VolumeHandle(endpoint, region, path_style, bucket, prefix)
    assert parse_volume_id(handle.volume_id) == handle


def test_foreign_ids_are_not_parsed() -> None:
    assert parse_volume_id("fake-vol-id") is None
    assert parse_volume_id("rz1:a:b:x:c:d") is None  # bad addressing style
    assert parse_volume_id("rz1:http%3A%2F%2Fh:r:p:b:..%2Fetc") is None  # traversal in the prefix
    assert parse_volume_id("rz1:http%3A%2F%2Fh:r:p:b:") is None  # no prefix: would delete the bucket


def test_long_or_odd_names_become_one_short_distinct_segment() -> None:
    long_a, long_b = "a" * 128, "a" * 127 + "b"
    assert short_segment("pvc-1") == "pvc-1"
    assert len(short_segment(long_a)) <= PREFIX_NAME_MAX
    assert short_segment(long_a) != short_segment(long_b)
    assert short_segment("..") not in (".", "..")
    assert "/" not in short_segment("a/b")
