"""Mount table queries and bind mounts of a staged volume into pod target paths.

Paths are looked up in /proc/self/mountinfo rather than stat()ed, because a dead FUSE mount
answers stat() with ENOTCONN; `mount`/`umount` from util-linux do the syscalls."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import os
from pathlib import Path

from razorfs.csi.errors import CsiError


class MountError(CsiError):
    """A mount or umount command failed."""


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, index = [], 0
    while index < len(field):
        code = field[index + 1 : index + 4]
        if field[index] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def mount_points() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount in our namespace, in mount order."""
    result = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            result.append((_unescape(fields[4]), fields[separator + 1]))
    return result


def mount_count(path: Path) -> int:
    """How many mounts are stacked on exactly `path`."""
    target = str(path)
    return sum(1 for point, _ in mount_points() if point == target)


def mounted_paths() -> frozenset[str]:
    """Every mount point, from one read of the mount table (cheap to test many paths against)."""
    return frozenset(point for point, _ in mount_points())


def is_mounted(path: Path) -> bool:
    return mount_count(path) > 0


STAT_TIMEOUT_S = 5.0


class MountHealth(enum.Enum):
    OK = "ok"
    DEAD = "dead"  # ENOTCONN and friends: the FUSE daemon is gone
    SLOW = "slow"  # no answer in time: busy (flushing, back pressure) or hung; not proof of death


def _stat_health(path: Path) -> MountHealth:
    # statvfs, not stat: FUSE answers a stat of a mount's root from attributes cached for up to
    # the attribute timeout, even after its daemon died; a statfs always reaches the daemon.
    try:
        os.statvfs(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.EIO, errno.ECONNABORTED):
            return MountHealth.DEAD
    return MountHealth.OK


async def mount_health(path: Path, timeout_s: float = STAT_TIMEOUT_S) -> MountHealth:
    """Stats `path` on a worker thread: a hung mount must never block the event loop that serves
    every other volume."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(_stat_health, path), timeout_s)
    except TimeoutError:
        return MountHealth.SLOW


async def is_dead(path: Path, timeout_s: float = STAT_TIMEOUT_S) -> bool:
    """True when `path` does not answer (dead or not within `timeout_s`)."""
    return await mount_health(path, timeout_s) is not MountHealth.OK


async def _run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await proc.communicate()
    return proc.returncode or 0, stderr.decode(errors="replace").strip()


async def bind(source: Path, target: Path, read_only: bool) -> None:
    """Bind-mounts `source` at `target`; a read-only bind is remounted read-only (the kernel
    ignores `ro` on the first bind call)."""
    code, err = await _run("mount", "--bind", str(source), str(target))
    if code != 0:
        raise MountError(f"bind mount of {source} at {target} failed: {err}")
    if read_only:
        code, err = await _run("mount", "-o", "remount,bind,ro", str(target))
        if code != 0:
            await unmount(target, lazy=True)
            raise MountError(f"read-only remount of {target} failed: {err}")


async def unmount(path: Path, lazy: bool = False) -> None:
    """Unmounts every layer on `path`; a dead or busy mount is detached lazily."""
    for _ in range(16):
        if not is_mounted(path):
            return
        code, err = await _run("umount", *(["-l"] if lazy else []), str(path))
        if code != 0:
            if lazy:
                raise MountError(f"umount of {path} failed: {err}")
            lazy = True
    if is_mounted(path):
        raise MountError(f"{path} is still mounted after repeated umount")


def _make_target(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # EEXIST is also what a dead mount there answers; a bind can stack over it.
    with contextlib.suppress(FileExistsError):
        path.mkdir()


def _remove_target(path: Path) -> None:
    """The CSI spec has the plugin delete the target it created on unpublish."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink()


async def make_target(path: Path) -> None:
    # Off the event loop: a path under a hung mount would block the whole server.
    await asyncio.to_thread(_make_target, path)


async def parent_exists(path: Path) -> bool:
    return await asyncio.to_thread(path.parent.is_dir)


async def remove_target(path: Path) -> None:
    await asyncio.to_thread(_remove_target, path)
