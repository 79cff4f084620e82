"""FUSE connections seen from the outside: whether a mountpoint is mounted (without touching it)
and aborting a connection whose daemon hung, the only way to free processes stuck in its syscalls.

`tests.realparts.fusemount.is_mounted` resolves the path with lstat, which itself blocks on a hung
daemon; here the path is resolved once before mounting and matched against mountinfo only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.realparts.fusemount import fusectl


def _mountinfo_entry(real_path: str) -> list[str] | None:
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[4] == real_path:
                return fields
    return None


def is_listed(real_path: str) -> bool:
    return _mountinfo_entry(real_path) is not None


def connection_id(real_path: str) -> int | None:
    """A FUSE mount's connection number is the minor of its device id (mountinfo field 3)."""
    fields = _mountinfo_entry(real_path)
    if fields is None:
        return None
    fs_type = fields[fields.index("-") + 1]
    if not fs_type.startswith("fuse"):
        return None
    return int(fields[2].split(":")[1])


def abort_connection(real_path: str) -> bool:
    """Fail every pending and future request of the mount at `real_path` with ENOTCONN."""
    conn = connection_id(real_path)
    if conn is None:
        return False
    try:
        with fusectl() as connections:
            (connections / str(conn) / "abort").write_text("1")
    except OSError:
        return False
    subprocess.run(["umount", "-l", real_path], capture_output=True)
    return True


def resolve_unmounted(path: Path) -> str:
    """Resolve `path` while nothing is mounted there, so later checks never stat it."""
    return os.path.realpath(path)
