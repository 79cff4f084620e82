"""Warm re-reads are served by the kernel's page cache, and a change in S3 still reaches readers
after the metadata TTL (close-to-open), because a changed file is opened without the old pages."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

MiB = 1024 * 1024


def test_warm_reread_is_served_by_the_page_cache_and_a_remote_change_still_shows(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    vol = razorfs_mount()
    path = vol.mountpoint / "warm.bin"
    first = os.urandom(4 * MiB)
    path.write_bytes(first)
    vol.flush()
    assert path.read_bytes() == first
    before = vol.stats()
    for _ in range(3):
        assert path.read_bytes() == first
    after = vol.stats()
    # Counted at the daemon's open (keep_cache), not by reads reaching it: this VM's kernel
    # sometimes evicts a few cached pages within seconds (see the test below).
    assert after["opens_keeping_pages"] == before["opens_keeping_pages"] + 3, "warm re-reads dropped the pages"
    assert after["opens_dropping_pages"] == before["opens_dropping_pages"]

    second = os.urandom(2 * MiB)
    s3_client.put_object(Bucket=bucket, Key="vol/warm.bin", Body=second)
    time.sleep(2.5)  # past the 1 s metadata TTL and the kernel's attribute timeout
    assert path.read_bytes() == second


def test_page_cache_survives_revalidation_of_an_unchanged_file(razorfs_mount: MountFactory) -> None:
    """A revalidation past the TTL that finds the same object keeps the kernel's pages: the daemon
    answers the open with keep_cache, and the file's mtime (to the nanosecond) does not move (S3
    keeps whole seconds; a new mtime makes the kernel drop the file's cached pages).

    Counted at the daemon's open, not by reads that reach it: on this VM the kernel sometimes
    evicts a few pages of a cached file within seconds with memory free, old code and new alike."""
    vol = razorfs_mount()
    path = vol.mountpoint / "kept.bin"
    data = os.urandom(8 * MiB)
    path.write_bytes(data)
    vol.flush()
    assert path.read_bytes() == data
    mtime_ns = path.stat().st_mtime_ns
    before = vol.stats()
    for _ in range(2):
        time.sleep(2.5)  # past the 1 s metadata TTL and the kernel's attribute timeout
        assert path.read_bytes() == data
        assert path.stat().st_mtime_ns == mtime_ns, "revalidation changed the mtime the kernel sees"
    after = vol.stats()
    assert after["opens_dropping_pages"] == before["opens_dropping_pages"], "a revalidated open dropped the pages"
    assert after["opens_keeping_pages"] == before["opens_keeping_pages"] + 2


def test_the_mount_reads_ahead_a_mebibyte(razorfs_mount: MountFactory) -> None:
    """Sequential readers reach the daemon in 1 MiB requests, not the kernel's default 128 KiB."""
    vol = razorfs_mount()
    dev = os.stat(vol.mountpoint).st_dev
    window = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb").read_text()
    assert int(window) == 1024
