"""close() survives a power loss: shown on the daemon's own system calls. strace follows the mount
daemon (every thread) while a program writes and closes files; before close() returns to the
program, the daemon must have fsync'd the cache file holding the bytes (after writing them), the
cache directory the file was created in, and fdatasync'd the journal's WAL after the journal row
was written into it. kill -9 cannot tell a missing fsync from a present one (the page cache
survives a process); these calls are what makes the promise hold when the machine stops."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realparts.processes import wait_until
from tests.reliability.conftest import MountFactory
from tests.reliability.workload import KiB, content_for, write_file

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

TRACED = "fsync,fdatasync,syncfs,pwrite64,openat,rename,renameat,renameat2"
# "1732800000.123456 fsync(7</cache/data/3>) = 0 <0.001234>" (-ttt -y -T), possibly prefixed by
# "[pid N] " and split into "<unfinished ...>" / "<... fsync resumed>" lines by another thread.
_CALL = re.compile(r"^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(\d+\.\d+)\s+(\w+)\((.*)$")
_RESUMED = re.compile(r"^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(\d+\.\d+)\s+<\.\.\. (\w+) resumed>(.*)$")
_FD_PATH = re.compile(r"^-?\d+<([^>]*)>")


@dataclass(frozen=True)
class Call:
    name: str
    path: str  # of the fd (first argument) or the path argument, "" if none
    args: str
    started: float
    ended: float  # epoch seconds, the clock time.time() reads


class DaemonTrace:
    """strace attached to a running daemon, all threads, timestamps on the wall clock."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            ["strace", "-f", "-ttt", "-T", "-y", "-qq", "-e", f"trace={TRACED}", "-o", str(out), "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_until(lambda: self._attached(pid), 30, "strace attached to every thread of the daemon")

    def _attached(self, pid: int) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"strace failed: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        tracers = []
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            line = next(x for x in status.read_text().splitlines() if x.startswith("TracerPid:"))
            tracers.append(int(line.split()[1]))
        return bool(tracers) and all(t == self.proc.pid for t in tracers)

    def stop(self) -> list[Call]:
        self.proc.send_signal(signal.SIGINT)  # detaches from the daemon, which runs on
        self.proc.wait(30)
        return parse_strace(self.out.read_text())


def parse_strace(text: str) -> list[Call]:
    calls: list[Call] = []
    unfinished: dict[tuple[str, str], tuple[float, str]] = {}
    for line in text.splitlines():
        resumed = _RESUMED.match(line)
        if resumed:
            pid = resumed.group(1) or resumed.group(2) or ""
            name = resumed.group(4)
            started, args = unfinished.pop((pid, name), (float(resumed.group(3)), ""))
            calls.append(_call(name, args + resumed.group(5), started, float(resumed.group(3))))
            continue
        match = _CALL.match(line)
        if not match:
            continue
        pid = match.group(1) or match.group(2) or ""
        started, name, rest = float(match.group(3)), match.group(4), match.group(5)
        if rest.endswith("<unfinished ...>"):
            unfinished[(pid, name)] = (started, rest)
            continue
        duration = re.search(r"<(\d+\.\d+)>$", rest)
        calls.append(_call(name, rest, started, started + (float(duration.group(1)) if duration else 0.0)))
    return calls


def _call(name: str, args: str, started: float, ended: float) -> Call:
    fd_path = _FD_PATH.match(args)
    if fd_path:
        path = fd_path.group(1)
    else:
        quoted = re.search(r'"([^"]*)"', args)
        path = quoted.group(1) if quoted else ""
    return Call(name, path, args, started, ended)


def succeeded(call: Call) -> bool:
    return re.search(r"\)\s+=\s+\d+", call.args) is not None


@pytest.mark.timeout(120)
def test_close_returns_only_after_the_data_its_directory_and_the_journal_row_are_synced(
    mount_factory: MountFactory, tmp_path: Path
) -> None:
    if shutil.which("strace") is None:
        pytest.fail("real part missing: strace (apt-get install strace)", pytrace=False)
    mount = mount_factory()
    pid = mount.pid()
    assert pid is not None
    cache = os.path.realpath(mount.cache_dir)
    data_dir = f"{cache}/data"
    wal = f"{cache}/journal.sqlite-wal"
    write_file(mount.mountpoint / "warm-up.bin", b"the journal and its WAL exist\n")
    mount.flush()  # nothing left to upload: no journal change but the ones the closes below make
    trace = DaemonTrace(pid, tmp_path / "daemon.strace")
    try:
        # 200 KiB: above the size whose content rides in the journal row, so the cache file itself
        # must be fsync'd; and one small file, whose row alone (in the WAL) must be synced.
        sizes = {"large.bin": 200 * KiB, "small.txt": 3 * KiB}
        spans: dict[str, tuple[float, float]] = {}
        for name, size in sizes.items():
            opened = time.time()
            write_file(mount.mountpoint / name, content_for(7, name, size))
            spans[name] = (opened, time.time())
            time.sleep(0.3)  # the next file's calls must not be taken for this one's
    finally:
        calls = trace.stop()
    assert mount.alive(), mount.log_tail()

    opened, closed = spans["large.bin"]
    during = [c for c in calls if opened <= c.started and c.ended <= closed and succeeded(c)]
    shown = "\n".join(f"{c.started:.6f}-{c.ended:.6f} {c.name} {c.path}" for c in calls if opened <= c.started)
    data_writes = [c for c in during if c.name == "pwrite64" and c.path.startswith(data_dir + "/")]
    assert data_writes, f"no write of the file's bytes into a cache file between open and close:\n{shown}"
    cache_file = data_writes[-1].path
    file_syncs = [c for c in during if c.name in ("fsync", "fdatasync") and c.path == cache_file]
    assert file_syncs and file_syncs[-1].started >= data_writes[-1].ended, (
        f"close() returned before {cache_file} was fsync'd after its last write:\n{shown}"
    )
    created = [c for c in during if c.name == "openat" and c.path == cache_file and "O_CREAT" in c.args]
    dir_syncs = [c for c in during if c.name == "fsync" and c.path == data_dir]
    assert created, f"the cache file was not created during the write:\n{shown}"
    assert dir_syncs and dir_syncs[-1].started >= created[-1].ended, (
        f"close() returned before the cache directory was fsync'd after {cache_file} was created:\n{shown}"
    )
    check_journal_row_synced_before_close(during, wal, shown)

    opened, closed = spans["small.txt"]
    during = [c for c in calls if opened <= c.started and c.ended <= closed and succeeded(c)]
    shown = "\n".join(f"{c.started:.6f}-{c.ended:.6f} {c.name} {c.path}" for c in calls if opened <= c.started)
    check_journal_row_synced_before_close(during, wal, shown)


def check_journal_row_synced_before_close(during: list[Call], wal: str, shown: str) -> None:
    row_writes = [c for c in during if c.name == "pwrite64" and c.path == wal]
    assert row_writes, f"no journal row written into {wal} between open and close:\n{shown}"
    wal_syncs = [c for c in during if c.name in ("fsync", "fdatasync") and c.path == wal]
    assert wal_syncs and wal_syncs[-1].started >= row_writes[0].ended, (
        f"close() returned before the WAL was synced after the journal row was written:\n{shown}"
    )
