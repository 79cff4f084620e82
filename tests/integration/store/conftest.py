"""Fixtures for the store's integration tests: an `S3Store` on a fresh bucket of the real server."""

from __future__ import annotations

from typing import Any

import pytest

from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import MiB, S3Settings
from tests.realparts.s3server import S3Server

FAST_RETRY = RetryPolicy(max_attempts=10, base_delay_s=0.02, max_delay_s=0.5)


def make_store(server: S3Server, bucket: str, endpoint_url: str | None = None, **overrides: Any) -> S3Store:
    options: dict[str, Any] = {
        "bucket": bucket,
        "endpoint_url": endpoint_url or server.endpoint_url,
        "region": server.region,
        "force_path_style": True,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        "part_size_bytes": 5 * MiB,
        "multipart_threshold_bytes": 8 * MiB,
        "retry": FAST_RETRY,
    }
    options.update(overrides)
    return S3Store(S3Settings(**options))


@pytest.fixture
def s3_store(s3_server: S3Server, bucket: str) -> S3Store:
    return make_store(s3_server, bucket)
