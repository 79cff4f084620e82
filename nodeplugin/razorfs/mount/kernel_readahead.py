"""The kernel's readahead window for a mount. FUSE mounts start at 128 KiB, so a sequential reader
reaches the daemon as one 128 KiB request after another; a 1 MiB window lets the kernel send 1 MiB
requests (FUSE's largest), an eighth of the requests and of their per-request cost in the daemon.
Random reads are unaffected: the kernel reads ahead only for sequential access.

The window lives in sysfs under the mount's device number, found in /proc/self/mountinfo (a stat
of the mountpoint would wait for this very daemon). Setting it needs root; without, the kernel's
default stays and the mount works the same, only slower for large sequential reads."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

READ_AHEAD_KIB = 1024
MOUNTINFO = Path("/proc/self/mountinfo")
BDI_ROOT = Path("/sys/class/bdi")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


def mount_device(mountpoint: Path, mountinfo: str) -> str | None:
    """The `major:minor` of the filesystem mounted last at `mountpoint`, or None."""
    device = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and _unescape(fields[4]) == str(mountpoint):
            device = fields[2]  # a later line is a mount on top of an earlier one
    return device


def set_read_ahead(mountpoint: Path, kib: int = READ_AHEAD_KIB) -> bool:
    """Sets the readahead window of the mount at `mountpoint`; False (logged) when it cannot."""
    try:
        device = mount_device(mountpoint, MOUNTINFO.read_text())
        if device is None:
            log.info("readahead left at the default: %s not found in mountinfo", mountpoint)
            return False
        (BDI_ROOT / device / "read_ahead_kb").write_text(str(kib))
    except OSError as err:
        log.info("readahead left at the kernel's default for %s: %s", mountpoint, err)
        return False
    return True
