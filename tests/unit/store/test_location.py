"""s3:// URLs parse into a bucket and a normalized prefix; paths join onto it with one slash."""

from __future__ import annotations

import pytest

from razorfs.store.location import InvalidS3Url, S3Url, join_key, parse_s3_url


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://b1k", "b1k", ""),
        ("s3://b1k/", "b1k", ""),
        ("s3://b1k/vol", "b1k", "vol/"),
        ("s3://b1k/vol/", "b1k", "vol/"),
        ("s3://my.bucket-2/a/b/c", "my.bucket-2", "a/b/c/"),
        ("S3://Bucket_x/v", "Bucket_x", "v/"),
    ],
)
def test_parse_s3_url_splits_bucket_and_normalizes_prefix(url: str, bucket: str, prefix: str) -> None:
    assert parse_s3_url(url) == S3Url(bucket, prefix)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "bucket/vol",
        "http://bucket/vol",
        "s3://",
        "s3:///vol",
        "s3://a",
        "s3://b b/x",
        "s3://bkt/a//c",
        "s3://bkt/../x",
        "s3://bkt/a/./b",
    ],
)
def test_parse_s3_url_rejects_malformed_urls_with_one_line(url: str) -> None:
    with pytest.raises(InvalidS3Url) as err:
        parse_s3_url(url)
    assert "\n" not in str(err.value)


def test_key_for_maps_volume_paths_under_the_prefix() -> None:
    assert parse_s3_url("s3://bkt/vol").key_for("a/c") == "vol/a/c"
    assert parse_s3_url("s3://bkt/vol").key_for("/a/c") == "vol/a/c"
    assert parse_s3_url("s3://bkt").key_for("a/c") == "a/c"
    assert parse_s3_url("s3://bkt/vol").key_for("") == "vol/"
    assert parse_s3_url("s3://bkt/vol").url == "s3://bkt/vol/"
    assert parse_s3_url("s3://bkt").url == "s3://bkt"


def test_join_key_puts_exactly_one_slash_between() -> None:
    assert join_key("p/", "x") == "p/x"
    assert join_key("p", "x") == "p/x"
    assert join_key("", "/x/") == "x/"
    assert join_key("p/", "d/") == "p/d/"
