"""What `ls -l` and new names cost in S3 requests, counted at a proxy in front of the real server:
the first `ls -l` of objects another tool wrote HEADs each once (their user metadata is needed),
a repeat after the TTL only re-lists (the listing's ETag and LastModified vouch for the HEADs),
a metadata change by another client is still seen, creating files in a directory whose
listing expired re-lists it instead of asking S3 about every new name, and an `ls -l` slower
than the TTL lists its folder once (each entry's HEAD answers its lookup)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory
from tests.realparts.faultproxy import Fault, FaultProxy

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

OBJECTS = 150
PAST_TTL_S = 2.5  # the mount's 1 s metadata TTL plus the kernel's attribute timeout
METADATA_TTL_S = 1.0


def _few_lists(sweep_s: float) -> int:
    """How many LISTs of its folder an `ls -l` lasting `sweep_s` may send: once, and again only
    when HEADs fetched ahead expired before `ls` reached their names (a new LIST then vouches for
    them instead of as many new HEADs; seen on a loaded machine, where `ls` lags). Re-listing at
    every TTL, the behaviour these tests guard against, sends one per TTL the sweep spans: this
    allows fewer than half of that."""
    return max(1, int(sweep_s / METADATA_TTL_S / 2) - 1)


def _ls_long(folder: Path) -> dict[str, str]:
    out = subprocess.run(["ls", "-l", "--color=never", str(folder)], capture_output=True, text=True, check=True)
    return {line.split()[-1]: line.split()[0] for line in out.stdout.splitlines()[1:]}


def _put_objects(s3_client: Any, bucket: str, prefix: str) -> None:
    for i in range(OBJECTS):
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/o{i:04d}", Body=b"x" * i)
    s3_client.put_object(
        Bucket=bucket, Key=f"{prefix}/private", Body=b"secret", Metadata={"mode": str(stat.S_IFREG | 0o600)}
    )


def test_ls_long_heads_each_object_once_and_sees_metadata_changes(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    _put_objects(s3_client, bucket, "lsvol/many")
    vol = razorfs_mount(prefix="lsvol", endpoint_url=fault_proxy.endpoint_url)
    folder = vol.mountpoint / "many"

    fault_proxy.stats.by_method.clear()
    modes = _ls_long(folder)
    assert len(modes) == OBJECTS + 1
    assert modes["private"] == "-rw-------" and modes["o0001"] == "-rw-r--r--"
    first_heads = fault_proxy.stats.by_method["HEAD"]
    # Besides one per object: the root's and the folder's markers and, as SeaweedFS keeps no
    # metadata on markers, their `_$folder$` companions (fs.dir_marker), and the folder's name.
    assert OBJECTS + 1 <= first_heads <= OBJECTS + 7, fault_proxy.stats.by_method

    time.sleep(PAST_TTL_S)
    fault_proxy.stats.by_method.clear()
    assert _ls_long(folder) == modes
    assert fault_proxy.stats.by_method["GET"] >= 1, "the expired listing was not re-read"
    # Only the directories' own markers are HEADed again (they have no ETag in a listing).
    assert fault_proxy.stats.by_method["HEAD"] <= 5, fault_proxy.stats.by_method

    # Another client changes only the metadata (same content, so the same ETag): LastModified
    # moves, so the cached HEAD is no longer vouched for.
    time.sleep(1.1)  # LastModified has whole seconds in HEAD replies
    s3_client.copy_object(
        Bucket=bucket,
        Key="lsvol/many/o0001",
        CopySource={"Bucket": bucket, "Key": "lsvol/many/o0001"},
        Metadata={"mode": str(stat.S_IFREG | 0o640)},
        MetadataDirective="REPLACE",
    )
    time.sleep(PAST_TTL_S)
    assert _ls_long(folder)["o0001"] == "-rw-r-----"


def test_new_names_in_an_expired_directory_cost_a_listing_not_a_head_each(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    _put_objects(s3_client, bucket, "newvol/dir")
    vol = razorfs_mount(prefix="newvol", endpoint_url=fault_proxy.endpoint_url)
    folder = vol.mountpoint / "dir"
    assert len(list(folder.iterdir())) == OBJECTS + 1
    time.sleep(PAST_TTL_S)

    fault_proxy.stats.by_method.clear()
    for i in range(40):
        (folder / f"new{i:03d}").write_bytes(b"n" * 10)
    # Before: a HEAD and a LIST per new name; now a LIST of the folder and a HEAD of its marker
    # per TTL, whatever the number of names.
    lookups = fault_proxy.stats.by_method["HEAD"] + fault_proxy.stats.by_method["GET"]
    assert lookups <= 12, fault_proxy.stats.by_method
    vol.flush()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("new")) == [f"new{i:03d}" for i in range(40)]
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="newvol/dir/new")
    assert listed["KeyCount"] == 40


def test_reading_back_a_listed_folder_revalidates_from_the_listing(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    vol = razorfs_mount(prefix="rbvol", endpoint_url=fault_proxy.endpoint_url)
    folder = vol.mountpoint / "tree"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i:02d}").write_bytes(bytes([i]) * 100)
    vol.flush()
    time.sleep(PAST_TTL_S)
    s3_client.put_object(Bucket=bucket, Key="rbvol/tree/f07", Body=b"changed elsewhere")

    fault_proxy.stats.by_method.clear()
    names = sorted(p.name for p in folder.iterdir())  # a fresh listing, with every ETag
    contents = {name: (folder / name).read_bytes() for name in names}
    assert contents["f07"] == b"changed elsewhere"  # its ETag differs from the cached copy's
    assert all(contents[f"f{i:02d}"] == bytes([i]) * 100 for i in range(40) if i != 7)
    # Before: a HEAD per file once the TTL had passed; now the changed file's and the markers'.
    assert fault_proxy.stats.by_method["HEAD"] <= 10, fault_proxy.stats.by_method


def test_ls_long_slower_than_the_ttl_lists_its_folder_once(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    _put_objects(s3_client, bucket, "slowvol/many")
    vol = razorfs_mount(prefix="slowvol", endpoint_url=fault_proxy.endpoint_url)
    # Slow HEADs of the files stretch the first `ls -l` over several metadata TTLs (HEADs run 32
    # ahead on 16 threads, so 150 files take about ten delays), each well within the deadline of
    # a revalidation.
    fault_proxy.add_rule(Fault.LATENCY, times=None, method="HEAD", path_contains="slowvol/many/o", delay_s=0.8)
    folder_lists = fault_proxy.add_rule(Fault.LATENCY, times=1000, method="GET", path_contains="prefix=slowvol/many/")
    assert os.listdir(vol.mountpoint) == ["many"]  # the volume root is listed: lookups of "many" re-list it
    started = time.monotonic()
    modes = _ls_long(vol.mountpoint / "many")
    sweep_s = time.monotonic() - started
    assert sweep_s > PAST_TTL_S, "the sweep was not slower than the TTL"
    assert len(modes) == OBJECTS + 1 and modes["private"] == "-rw-------"
    # Every entry needs its HEAD anyway (its user metadata); re-listing the folder each time the
    # listing expired would add a LIST per TTL (the sweep spans several) and spare none of them.
    assert 1000 - (folder_lists.times or 0) <= _few_lists(sweep_s)


def test_lookups_of_a_folder_in_an_unlisted_directory_ask_for_one_key(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, s3_client: Any, bucket: str
) -> None:
    _put_objects(s3_client, bucket, "unlisted/many")
    vol = razorfs_mount(prefix="unlisted", endpoint_url=fault_proxy.endpoint_url)
    # As above, an `ls -l` over several TTLs; the volume root is never listed, so each lookup of
    # "many" (again once its entry expired) asks S3 whether anything is below it.
    fault_proxy.add_rule(Fault.LATENCY, times=None, method="HEAD", path_contains="unlisted/many/o", delay_s=0.8)
    full_pages = fault_proxy.add_rule(
        Fault.LATENCY, times=1000, method="GET", path_contains="prefix=unlisted/many/&max-keys=1000&"
    )
    one_key = fault_proxy.add_rule(
        Fault.LATENCY, times=1000, method="GET", path_contains="prefix=unlisted/many/&max-keys=1&"
    )
    started = time.monotonic()
    modes = _ls_long(vol.mountpoint / "many")
    sweep_s = time.monotonic() - started
    assert sweep_s > PAST_TTL_S, "the sweep was not slower than the TTL"
    assert len(modes) == OBJECTS + 1 and modes["private"] == "-rw-------"
    assert 1000 - (one_key.times or 0) >= 2, "the folder's lookups did not ask S3"
    # Only the folder's own listing fetches full pages; "is anything below?" fetches one key.
    assert 1000 - (full_pages.times or 0) <= _few_lists(sweep_s)
