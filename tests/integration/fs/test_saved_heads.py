"""`ls -l` after a remount, counted at a proxy in front of the real server: the attributes HEADs
fetched in an earlier mount are kept in the cache dir (`heads.sqlite`) and vouched for by the
new listing's ETags and LastModified, so no object is HEADed again; what another writer changed
(new content: new ETag; a metadata-only copy: same ETag on SeaweedFS, new LastModified) and what
this mount changed (chmod) show after the remount and after the listing TTL; a wiped cache dir
only costs the HEADs again."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory
from tests.realparts.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

OBJECTS = 120
PAST_TTL_S = 2.5  # the mount's 1 s metadata TTL plus the kernel's attribute timeout
SETTLE_S = 2.5  # answers about objects changed less than 2 s ago are not saved (saved_heads.py)
COUNTED = 10_000


def _ls_long(folder: Path) -> dict[str, str]:
    out = subprocess.run(["ls", "-l", "--color=never", str(folder)], capture_output=True, text=True, check=True)
    return {line.split()[-1]: line.split()[0] for line in out.stdout.splitlines()[1:]}


def _put_objects(s3_client: Any, bucket: str, prefix: str) -> None:
    for i in range(OBJECTS):
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/f-{i:04d}", Body=b"x" * i)
    s3_client.put_object(
        Bucket=bucket, Key=f"{prefix}/f-private", Body=b"secret", Metadata={"mode": str(stat.S_IFREG | 0o600)}
    )
    time.sleep(SETTLE_S)


class FileHeads:
    """Counts the HEADs of a folder's files (not of its marker) with a rule that delays nothing."""

    def __init__(self, proxy: FaultProxy, prefix: str) -> None:
        self._rule = proxy.add_rule(Fault.LATENCY, times=COUNTED, method="HEAD", path_contains=f"{prefix}/f-")
        self._last = 0

    def since_last(self) -> int:
        total = COUNTED - (self._rule.times or 0)
        count, self._last = total - self._last, total
        return count


def _copy_with_mode(s3_client: Any, bucket: str, key: str, mode: int) -> None:
    """Another writer's metadata-only change: a copy onto itself (same content, same ETag)."""
    s3_client.copy_object(
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": bucket, "Key": key},
        Metadata={"mode": str(stat.S_IFREG | mode)},
        MetadataDirective="REPLACE",
    )


def test_ls_long_after_a_remount_heads_no_object(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _put_objects(s3_client, bucket, "svol/many")
    cache_dir = tmp_path / "kept-cache"
    heads = FileHeads(fault_proxy, "svol/many")
    vol = razorfs_mount(prefix="svol", endpoint_url=fault_proxy.endpoint_url, cache_dir=cache_dir)
    modes = _ls_long(vol.mountpoint / "many")
    assert len(modes) == OBJECTS + 1 and modes["f-private"] == "-rw-------"
    assert heads.since_last() == OBJECTS + 1
    vol.umount()

    vol = razorfs_mount(prefix="svol", endpoint_url=fault_proxy.endpoint_url, cache_dir=cache_dir)
    fault_proxy.stats.by_method.clear()
    assert _ls_long(vol.mountpoint / "many") == modes
    assert heads.since_last() == 0
    # What is left: the root's and the folder's markers and their `_$folder$` companions
    # (a listing shows a directory as a prefix, with no ETag to vouch for its marker).
    assert fault_proxy.stats.by_method["HEAD"] <= 5, fault_proxy.stats.by_method
    vol.umount()

    # The user wipes the cache dir: the next mount simply asks S3 again.
    shutil.rmtree(cache_dir)
    vol = razorfs_mount(prefix="svol", endpoint_url=fault_proxy.endpoint_url, cache_dir=cache_dir)
    assert _ls_long(vol.mountpoint / "many") == modes
    assert heads.since_last() == OBJECTS + 1


def test_changes_by_another_writer_and_by_this_mount_show_after_a_remount_and_after_the_ttl(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    _put_objects(s3_client, bucket, "cvol/many")
    cache_dir = tmp_path / "kept-cache"
    heads = FileHeads(fault_proxy, "cvol/many")
    vol = razorfs_mount(prefix="cvol", endpoint_url=fault_proxy.endpoint_url, cache_dir=cache_dir)
    folder = vol.mountpoint / "many"
    modes = _ls_long(folder)
    assert modes["f-0001"] == modes["f-0002"] == "-rw-r--r--"
    vol.umount()

    # While nothing is mounted: a metadata-only copy (the ETag stays, LastModified moves) and new
    # content with other metadata (a new ETag).
    _copy_with_mode(s3_client, bucket, "cvol/many/f-0001", 0o640)
    s3_client.put_object(
        Bucket=bucket, Key="cvol/many/f-0002", Body=b"new", Metadata={"mode": str(stat.S_IFREG | 0o600)}
    )
    time.sleep(SETTLE_S)
    vol = razorfs_mount(prefix="cvol", endpoint_url=fault_proxy.endpoint_url, cache_dir=cache_dir)
    folder = vol.mountpoint / "many"
    heads.since_last()
    modes = _ls_long(folder)
    assert modes["f-0001"] == "-rw-r-----" and modes["f-0002"] == "-rw-------"
    assert heads.since_last() == 2  # only the two changed objects

    # While mounted: another writer's metadata-only copy shows once the listing expired, and this
    # mount's own chmod is kept for the next mount.
    _copy_with_mode(s3_client, bucket, "cvol/many/f-0003", 0o604)
    os.chmod(folder / "f-0004", 0o600)
    time.sleep(PAST_TTL_S)
    modes = _ls_long(folder)
    assert modes["f-0003"] == "-rw----r--" and modes["f-0004"] == "-rw-------"
    vol.umount()

    vol = razorfs_mount(prefix="cvol", endpoint_url=fault_proxy.endpoint_url, cache_dir=cache_dir)
    heads.since_last()
    assert _ls_long(vol.mountpoint / "many") == modes
    assert heads.since_last() == 0


@pytest.mark.parametrize("own_write", ["upload", "chmod"])
def test_another_writers_metadata_only_copy_after_our_own_write_shows_after_the_ttl(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, own_write: str
) -> None:
    """This mount writes an object (an upload, or a chmod: a copy onto itself), then another
    client rewrites its metadata only: the ETag stays, LastModified moves past our write. The
    listing after the TTL must not vouch for the attributes this mount wrote."""
    vol = razorfs_mount(prefix="own")
    target = vol.mountpoint / "f"
    target.write_bytes(b"ours")
    vol.flush()
    if own_write == "chmod":
        os.chmod(target, 0o600)
    assert stat.S_IMODE(target.stat().st_mode) == (0o600 if own_write == "chmod" else 0o644)
    time.sleep(1.1)  # the other writer's LastModified falls in a later second than our write
    _copy_with_mode(s3_client, bucket, "own/f", 0o640)
    time.sleep(PAST_TTL_S)
    assert os.listdir(vol.mountpoint) == ["f"]  # a fresh listing: the same ETag, a later LastModified
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
