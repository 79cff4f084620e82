"""Processes recorded by PID and start time in `<root>/pids/<name>.pid`, so a detached cluster is
stopped by what it recorded and a recycled PID is never signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from .processes import ManagedProcess


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def record(root: Path, name: str, proc: ManagedProcess) -> None:
    pids = root / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{name}.pid").write_text(f"{proc.proc.pid} {start_time(proc.proc.pid)}\n")


def recorded(root: Path) -> dict[str, tuple[int, str]]:
    found = {}
    for path in sorted((root / "pids").glob("*.pid")) if (root / "pids").exists() else []:
        pid, start = path.read_text().split()
        found[path.stem] = (int(pid), start)
    return found


def alive(pid: int, start: str) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child (tests start clusters in-process)
    return start_time(pid) == start


def _signal_group(pid: int, start: str, signum: int) -> None:
    if not alive(pid, start):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def stop(pid: int, start: str, timeout_s: float = 10.0) -> None:
    """TERM to the process group, KILL after `timeout_s`."""
    _signal_group(pid, start, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive(pid, start):
        time.sleep(0.1)
    if alive(pid, start):
        _signal_group(pid, start, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and alive(pid, start):
            time.sleep(0.1)


def stop_recorded(root: Path, name: str, timeout_s: float = 10.0) -> None:
    found = recorded(root).get(name)
    if found is not None:
        stop(*found, timeout_s=timeout_s)
        (root / "pids" / f"{name}.pid").unlink()
