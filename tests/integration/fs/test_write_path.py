"""The write path through a real mount: uploads read the cache file in place, and a file rewritten
while its upload is reading it gets a private copy first, so S3 ends with the last version (and
the first upload carried the first version whole)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

MiB = 1024 * 1024


def test_a_file_rewritten_during_its_upload_ends_as_the_last_version(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, fault_proxy: Any
) -> None:
    from tests.realparts.faultproxy import Fault

    vol = razorfs_mount(endpoint_url=fault_proxy.endpoint_url)
    # Slow parts: the first upload is still reading the cache file when the rewrite comes.
    fault_proxy.add_rule(Fault.LATENCY, times=None, method="PUT", path_contains="partNumber", delay_s=0.5)
    first = os.urandom(24 * MiB)
    path = vol.mountpoint / "big.bin"
    path.write_bytes(first)
    time.sleep(0.3)  # the upload has started
    patch = os.urandom(MiB)
    with open(path, "r+b") as f:
        f.seek(5 * MiB)
        f.write(patch)
        f.flush()
        os.fsync(f.fileno())
    expected = first[: 5 * MiB] + patch + first[6 * MiB :]
    got = s3_client.get_object(Bucket=bucket, Key="vol/big.bin")["Body"].read()
    assert got == expected
    assert "changed while being uploaded" in vol.log  # the rewrite did race the first upload
    fault_proxy.clear()
    assert not [p.name for p in (vol.cache_dir / "data").iterdir() if not p.name.isdigit()]
