"""`MountRegistry`: how `razorfs umount/flush/stats MOUNTPOINT` find the daemon of a mountpoint.
Each daemon writes `/run/razorfs/mounts/<sha256 of the mountpoint's real path>.json` with its
pid, mountpoint, cache dir and control socket, and removes it on exit. `RAZORFS_RUN_DIR`
overrides `/run/razorfs` (tests, non-root experiments)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from razorfs.errors import UsageError

DEFAULT_RUN_DIR = "/run/razorfs"


@dataclass(frozen=True)
class MountRecord:
    mountpoint: str
    cache_dir: str
    control_socket: str
    pid: int


def run_dir() -> Path:
    return Path(os.environ.get("RAZORFS_RUN_DIR", DEFAULT_RUN_DIR)) / "mounts"


def real_mountpoint(mountpoint: str | Path) -> str:
    # realpath without strict tolerates a dead FUSE mount (ENOTCONN on the last component).
    return os.path.realpath(mountpoint)


def _record_path(real_path: str) -> Path:
    # Takes an already resolved path: the daemon must never resolve its own mountpoint (an lstat
    # of it would wait for the daemon's own FUSE loop).
    digest = hashlib.sha256(real_path.encode()).hexdigest()[:32]
    return run_dir() / f"{digest}.json"


def write_record(record: MountRecord) -> None:
    """`record.mountpoint` must be the real path (see `real_mountpoint`)."""
    path = _record_path(record.mountpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, path)


def read_record(mountpoint: str | Path) -> MountRecord | None:
    try:
        data = json.loads(_record_path(real_mountpoint(mountpoint)).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return MountRecord(**data)


def list_records() -> list[MountRecord]:
    """Every mount this host's daemons recorded (a dead daemon's record stays until remounted)."""
    records = []
    for path in sorted(run_dir().glob("*.json")):
        try:
            records.append(MountRecord(**json.loads(path.read_text())))
        except (FileNotFoundError, ValueError, TypeError):
            continue  # removed or being replaced right now
    return sorted(records, key=lambda r: r.mountpoint)


def live_record(mountpoint: str) -> MountRecord:
    """The record of a mount whose daemon runs; a one-line UsageError (exit 1) otherwise."""
    record = read_record(mountpoint)
    if record is None:
        raise UsageError(f"{mountpoint} is not a RazorFS mount (no running daemon for it)", exit_code=1)
    if not pid_alive(record.pid):
        # Never report such a mount as cleanly gone: its journal may hold files not in S3 yet.
        raise UsageError(
            f"the daemon of {mountpoint} (pid {record.pid}) died; mount again with --cache-dir "
            f"{record.cache_dir} to replay its journal and finish its uploads",
            exit_code=1,
        )
    return record


def remove_record(real_path: str, pid: int) -> None:
    path = _record_path(real_path)
    try:
        record = MountRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return
    if record.pid == pid:
        path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child not reaped yet) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
