"""FUSE mountpoints for tests: created empty, force-unmounted at teardown whatever state they are in."""

from __future__ import annotations

import os
import shutil
import subprocess
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
