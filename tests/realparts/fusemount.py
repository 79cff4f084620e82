"""FUSE mountpoints for tests: created empty, force-unmounted at teardown whatever state they are in."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .processes import RealPartMissing


def require_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise RealPartMissing("/dev/fuse is missing: FUSE tests need a kernel with FUSE and root")
    if shutil.which("fusermount3") is None:
        raise RealPartMissing("fusermount3 not found: run `make setup` (apt-installs fuse3)")


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == target for line in mounts)


def force_unmount(path: Path) -> None:
    """Unmount every layer stacked on `path` (bind mounts included), lazily if it is busy or dead."""
    for _ in range(8):
        if not is_mounted(path):
            return
        result = subprocess.run(["umount", str(path)], capture_output=True)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


FUSECTL = Path("/sys/fs/fuse/connections")


def abort_connection(path: Path) -> bool:
    """Aborts the FUSE connection of the mount at `path` (fusectl's `abort`, mounting fusectl if
    needed): every request on it fails at once. The one way to free a daemon thread that waits on a
    request its own (killed) process read and will never answer: SIGKILL cannot end such a wait, and
    the connection would otherwise live as long as that thread holds /dev/fuse open. False if
    nothing is mounted at `path`."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mounts:
        devices = [line.split()[2] for line in mounts if line.split()[4] == target]
    if not devices:
        return False
    with fusectl() as connections:
        for device in devices:
            abort = connections / device.split(":")[1] / "abort"
            if abort.exists():
                abort.write_text("1")
    return True


@contextlib.contextmanager
def fusectl() -> Iterator[Path]:
    """The FUSE control filesystem (one folder per connection), mounted for the block when it is
    not mounted already, and then unmounted again: no test leaves it behind."""
    mounted_here = not any(FUSECTL.iterdir())
    if mounted_here:
        subprocess.run(["mount", "-t", "fusectl", "fusectl", str(FUSECTL)], capture_output=True, check=False)
    try:
        yield FUSECTL
    finally:
        if mounted_here:
            subprocess.run(["umount", str(FUSECTL)], capture_output=True, check=False)
