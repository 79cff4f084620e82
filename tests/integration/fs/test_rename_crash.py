"""kill -9 of the daemon at each step of the rename of a dirty file that has an older upload
(FileCache.move: journal the new name, copy the base object, point the row at the copy with a
pending delete, delete the old object). The fault proxy holds the daemon at the step: it refuses
the copy, delays the copy's answer after S3 made it, or refuses the delete of the old object; the
daemon is killed while it waits there, and once more while the restarted daemon finishes the
rename. After the restart the new name holds the newest acknowledged content (the dirty version,
not the older upload) and the old name is gone, through the mount and in S3."""

from __future__ import annotations

import functools
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountedVolume, MountFactory
from tests.realparts.faultproxy import Fault, FaultProxy, Rule
from tests.realparts.fusemount import force_unmount

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

KiB = 1024
MiB = 1024 * KiB
COPY_HEADER = "x-amz-copy-source"
# A rule counts its hits down from this (the proxy removes a rule only when it reaches 0).
HITS = 10_000
WAIT_S = 60.0


@functools.cache
def older_content(size: int) -> bytes:
    return random.Random(size).randbytes(256 * KiB) * (size // (256 * KiB))


PATCH_AT = 1 * MiB + 123
PATCH = b"acknowledged, newer than the upload " * 100


def newest_content(size: int) -> bytes:
    old = older_content(size)
    return old[:PATCH_AT] + PATCH + old[PATCH_AT + len(PATCH) :]


class RenameInFlight:
    """`os.rename` in a thread: it blocks while the daemon waits on S3, and fails once it dies."""

    def __init__(self, src: Path, dst: Path) -> None:
        self.error: OSError | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(src, dst), daemon=True)
        self._thread.start()

    def _run(self, src: Path, dst: Path) -> None:
        try:
            os.rename(src, dst)
        except OSError as err:
            self.error = err
        finally:
            self.done.set()

    def join(self) -> None:
        self._thread.join(timeout=WAIT_S)
        assert self.done.is_set(), "the rename did not return after the daemon was killed"


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def hit(rule: Rule) -> Callable[[], bool]:
    return lambda: rule.times is not None and rule.times < HITS


def s3_body(s3_client: Any, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3_client.exceptions.NoSuchKey:
        return None
    return body


def s3_etag(s3_client: Any, bucket: str, key: str) -> str | None:
    try:
        etag: str = s3_client.head_object(Bucket=bucket, Key=key)["ETag"]
    except s3_client.exceptions.ClientError:
        return None
    return etag


def uploaded_files(razorfs_mount: MountFactory, fault_proxy: FaultProxy, size: int, replacing: bool) -> Path:
    """src.bin (and with `replacing` dst.bin) uploaded; unmounted, its mountpoint returned."""
    first = razorfs_mount(endpoint_url=fault_proxy.endpoint_url)
    (first.mountpoint / "src.bin").write_bytes(older_content(size))
    if replacing:
        (first.mountpoint / "dst.bin").write_bytes(b"the replaced file's upload\n")
    first.flush()
    first.umount()
    return first.mountpoint


def dirty_versions(
    razorfs_mount: MountFactory, fault_proxy: FaultProxy, mountpoint: Path, replacing: bool
) -> MountedVolume:
    """Mounted again (so only the written bytes are cached), src.bin patched and closed: the newest
    content is journaled, its upload refused. With `replacing`, dst.bin gets a newer dirty version
    of its own. The step's rule is in place already: it comes before these (first match wins)."""
    vol = razorfs_mount(mountpoint=mountpoint, endpoint_url=fault_proxy.endpoint_url)
    fault_proxy.add_rule(Fault.ERROR_500, times=None, method="PUT", path_contains="/vol/src.bin")
    fault_proxy.add_rule(Fault.ERROR_500, times=None, method="POST", path_contains="/vol/src.bin")
    with open(vol.mountpoint / "src.bin", "r+b") as f:
        f.seek(PATCH_AT)
        f.write(PATCH)
    if replacing:
        fault_proxy.add_rule(Fault.ERROR_500, times=None, method="PUT", path_contains="/vol/dst.bin")
        (vol.mountpoint / "dst.bin").write_bytes(b"the replaced file's newer, dirty version\n")
    assert vol.stats()["dirty_files"] == (2 if replacing else 1)
    return vol


def kill_daemon_of(cache_dir: Path, mountpoint: Path) -> None:
    """SIGKILL of the daemon holding `cache_dir` (its pid is in the cache dir's lock file)."""
    pid = int((cache_dir / "lock").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), f"daemon {pid} to end")
    force_unmount(mountpoint)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] == "Z"
    except OSError:
        return True


def assert_renamed_with_the_newest_content(vol: MountedVolume, s3_client: Any, bucket: str, size: int) -> None:
    assert not (vol.mountpoint / "src.bin").exists(), "the old name is back after the restart"
    assert (vol.mountpoint / "dst.bin").read_bytes() == newest_content(size), "the new name lost the dirty version"
    vol.flush()
    assert s3_body(s3_client, bucket, "vol/src.bin") is None, "the old object was left in S3"
    assert s3_body(s3_client, bucket, "vol/dst.bin") == newest_content(size)
    assert vol.stats()["dirty_files"] == 0
    vol.umount()


# Each step's rule holds the daemon there; the returned check says when to kill.
def refuse_copy(proxy: FaultProxy, s3_client: Any, bucket: str) -> Callable[[], bool]:
    """Killed after step 1 (journaled under the new name), before the copy reached S3."""
    return hit(proxy.add_rule(Fault.ERROR_500, times=HITS, header=COPY_HEADER))


def delay_copy_answer(proxy: FaultProxy, s3_client: Any, bucket: str) -> Callable[[], bool]:
    """Killed after S3 made the copy (the older content under the new name), before step 3."""
    rule = proxy.add_rule(Fault.LATENCY, times=HITS, header=COPY_HEADER, delay_s=3 * WAIT_S)
    replaced = s3_etag(s3_client, bucket, "vol/dst.bin")
    return lambda: hit(rule)() and s3_etag(s3_client, bucket, "vol/dst.bin") not in (None, replaced)


def refuse_delete(proxy: FaultProxy, s3_client: Any, bucket: str) -> Callable[[], bool]:
    """Killed after step 3 (the row points at the copy, a pending delete recorded), before the old
    object is deleted."""
    return hit(proxy.add_rule(Fault.ERROR_500, times=HITS, method="DELETE", path_contains="/vol/src.bin"))


STEPS = {"copy-refused": refuse_copy, "copy-made-answer-delayed": delay_copy_answer, "delete-refused": refuse_delete}


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("step", "size", "replacing"),
    [
        ("copy-refused", 3 * MiB, False),
        ("copy-made-answer-delayed", 40 * MiB, True),  # compose from the base; a dirty file replaced
        ("delete-refused", 3 * MiB, False),
    ],
)
def test_kill_9_inside_the_rename_of_a_dirty_file_keeps_its_newest_content_under_the_new_name(
    fault_proxy: FaultProxy, razorfs_mount: MountFactory, s3_client: Any, bucket: str, step: str, size: int,
    replacing: bool,
) -> None:  # fmt: skip
    mountpoint = uploaded_files(razorfs_mount, fault_proxy, size, replacing)
    killed_at = STEPS[step](fault_proxy, s3_client, bucket)
    vol = dirty_versions(razorfs_mount, fault_proxy, mountpoint, replacing)
    rename = RenameInFlight(vol.mountpoint / "src.bin", vol.mountpoint / "dst.bin")
    wait_for(lambda: killed_at() or rename.done.is_set(), f"the rename to reach the {step} step")
    assert not rename.done.is_set(), f"the rename returned before the kill: {rename.error}"
    vol.kill9()
    rename.join()
    assert rename.error is not None, "the rename succeeded although the daemon was killed inside it"

    fault_proxy.clear()
    again = razorfs_mount(cache_dir=vol.cache_dir, mountpoint=vol.mountpoint, endpoint_url=fault_proxy.endpoint_url)
    assert_renamed_with_the_newest_content(again, s3_client, bucket, size)


@pytest.mark.timeout(240)
def test_kill_9_again_while_the_restart_finishes_the_rename_converges(
    fault_proxy: FaultProxy, razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    size = 3 * MiB
    mountpoint = uploaded_files(razorfs_mount, fault_proxy, size, replacing=False)
    killed_at = refuse_copy(fault_proxy, s3_client, bucket)
    vol = dirty_versions(razorfs_mount, fault_proxy, mountpoint, replacing=False)
    rename = RenameInFlight(vol.mountpoint / "src.bin", vol.mountpoint / "dst.bin")
    wait_for(killed_at, "the rename's copy")
    vol.kill9()
    rename.join()

    # The restarted daemon finishes the rename before it serves; it is killed while S3 makes its
    # copy (the answer held back), then started once more.
    fault_proxy.clear()
    finishing = fault_proxy.add_rule(Fault.LATENCY, times=HITS, header=COPY_HEADER, delay_s=3 * WAIT_S)
    failed: list[BaseException] = []

    def start() -> None:
        try:
            razorfs_mount(cache_dir=vol.cache_dir, mountpoint=vol.mountpoint, endpoint_url=fault_proxy.endpoint_url)
        except AssertionError as err:  # the daemon died before it was ready: expected
            failed.append(err)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    wait_for(hit(finishing), "the restarted daemon's copy")
    wait_for(lambda: s3_etag(s3_client, bucket, "vol/dst.bin") is not None, "the copy in S3")
    kill_daemon_of(vol.cache_dir, vol.mountpoint)
    starter.join(timeout=WAIT_S)
    assert failed, "the daemon became ready although it was killed while finishing the rename"

    fault_proxy.clear()
    again = razorfs_mount(cache_dir=vol.cache_dir, mountpoint=vol.mountpoint, endpoint_url=fault_proxy.endpoint_url)
    assert_renamed_with_the_newest_content(again, s3_client, bucket, size)
