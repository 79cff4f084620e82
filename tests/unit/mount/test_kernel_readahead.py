"""Finding a mount's device in mountinfo (the readahead window is set under that device)."""

from __future__ import annotations

from pathlib import Path

from razorfs.mount.kernel_readahead import mount_device

MOUNTINFO = """\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 0:40 / /tmp/mnt\\040with\\040space rw,nosuid,nodev,relatime shared:20 - fuse.razorfs razorfs rw
41 22 0:41 / /tmp/plain rw,nosuid,nodev,relatime shared:21 - fuse.razorfs razorfs rw
42 41 0:52 / /tmp/plain rw,nosuid,nodev,relatime shared:22 - fuse.razorfs razorfs rw
"""


def test_finds_the_device_of_a_path_with_escaped_spaces() -> None:
    assert mount_device(Path("/tmp/mnt with space"), MOUNTINFO) == "0:40"


def test_the_topmost_of_stacked_mounts_wins() -> None:
    assert mount_device(Path("/tmp/plain"), MOUNTINFO) == "0:52"


def test_a_path_that_is_not_mounted_has_no_device() -> None:
    assert mount_device(Path("/tmp/other"), MOUNTINFO) is None
