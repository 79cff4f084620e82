"""The privileged half of a RazorFS mount: the node plugin opens /dev/fuse and mounts it at the
volume's path itself (what libfuse's fusermount would do), then hands the open descriptor to the
volume's mount daemon (razorfs.mount.handover), which needs no privilege to serve it.

Until the daemon answers the kernel's INIT request, anything touching the new mount waits, so
nothing here stats the mountpoint after mounting."""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

from razorfs.mount.options import MountOptions

FUSE_DEVICE = "/dev/fuse"
FS_TYPE = "fuse.razorfs"
FS_NAME = "razorfs"
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4

_libc = ctypes.CDLL(None, use_errno=True)


def mount_options(options: MountOptions) -> tuple[int, str]:
    """mount(2) flags and FUSE data for a volume (without the `fd=`, added at mount time). The
    kernel checks permissions itself (default_permissions), as every RazorFS mount asks."""
    data = [f"rootmode={stat.S_IFDIR:o}", "user_id=0", "group_id=0", "default_permissions"]
    if options.allow_other:
        data.append("allow_other")
    flags = _MS_NOSUID | _MS_NODEV
    if options.cache_mode == "readonly":
        flags |= _MS_RDONLY
    return flags, ",".join(data)


def mount_fuse(mountpoint: Path, options: MountOptions) -> int:
    """Mounts a new FUSE session at `mountpoint`; returns its /dev/fuse descriptor (the caller
    hands it over and closes its copy: the session ends when the last copy is closed)."""
    fd = os.open(FUSE_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    flags, data = mount_options(options)
    result = _libc.mount(
        FS_NAME.encode(), os.fsencode(mountpoint), FS_TYPE.encode(), flags, f"fd={fd},{data}".encode()
    )
    if result != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, f"mounting FUSE at {mountpoint}: {os.strerror(err)}")
    return fd
