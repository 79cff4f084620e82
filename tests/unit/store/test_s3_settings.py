"""S3Settings refuse contradictory options and never show explicit secrets in their repr."""

from __future__ import annotations

import pytest

from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import MiB, S3Settings


def test_kms_key_id_needs_kms_encryption() -> None:
    with pytest.raises(ValueError, match="aws:kms"):
        S3Settings(bucket="b", sse="AES256", sse_kms_key_id="key-1")
    S3Settings(bucket="b", sse="aws:kms", sse_kms_key_id="key-1")


@pytest.mark.parametrize("part_size", [1 * MiB, 5 * 1024 * MiB])
def test_part_size_must_respect_s3_limits(part_size: int) -> None:
    with pytest.raises(ValueError, match="part size"):
        S3Settings(bucket="b", part_size_bytes=part_size)


def test_repr_and_description_hide_explicit_credentials() -> None:
    settings = S3Settings(
        bucket="b", endpoint_url="http://127.0.0.1:1", access_key_id="AKIDHIDDEN", secret_access_key="s3cr3t-value"
    )
    store = S3Store(settings)
    for text in (repr(settings), store.description):
        assert "s3cr3t-value" not in text and "AKIDHIDDEN" not in text
    assert store.description == "s3://b at http://127.0.0.1:1"
