"""A `razorfs mount` daemon driven the way a user drives it (the CLI, as a subprocess), which tests
can also kill -9, restart on the same cache dir, flush and unmount. Teardown leaves no daemon and
no FUSE mount behind, whatever state the daemon is in (dead, hung, or mid-upload)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.realparts.fusemount import abort_connection, force_unmount, is_mounted

RAZORFS_BIN = str(Path(sys.executable).with_name("razorfs"))
CLI_TIMEOUT_S = 120.0
KILL_WAIT_S = 20.0
KILL_SLOW_S = 2.0  # a daemon still there this long after SIGKILL is dumped (thread_dump)


class MountFailed(AssertionError):
    """`razorfs mount` (or flush/umount) exited non-zero; the message carries its stderr and the
    tail of the daemon's log."""


@dataclass
class MountProcess:
    url: str  # s3://bucket/prefix
    mountpoint: Path
    cache_dir: Path
    endpoint_url: str
    env: dict[str, str] = field(repr=False)  # holds the S3 secret: never in failure output
    extra_args: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # every daemon this object started

    @property
    def log_path(self) -> Path:
        return self.cache_dir / "daemon.log"

    def command(self) -> list[str]:
        return [
            RAZORFS_BIN,
            "mount",
            self.url,
            str(self.mountpoint),
            "--endpoint-url",
            self.endpoint_url,
            "--cache-dir",
            str(self.cache_dir),
            "--force-path-style",
            "--region",
            "us-east-1",
            *self.extra_args,
        ]

    def start(self) -> MountProcess:
        if not self.pids:  # a restart finds the dead mount (ENOTCONN) there: the daemon handles it
            self.mountpoint.mkdir(parents=True, exist_ok=True)
        result = self._cli(self.command())
        if result.returncode != 0:
            raise MountFailed(
                f"razorfs mount exited {result.returncode}: {result.stderr.strip()}\n{self.log_tail()}\n"
                f"{self.diagnostics()}"
            )
        pid = self.pid()
        if pid is not None:
            self.pids.append(pid)
        return self

    def pid(self) -> int | None:
        """The live daemon's pid, from the lock file the daemon writes into its cache dir."""
        try:
            text = (self.cache_dir / "lock").read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() and _alive(int(text)) else None

    def alive(self) -> bool:
        return self.pid() is not None

    def kill9(self) -> None:
        """A crash: SIGKILL, no flush, the FUSE mount left dead (ENOTCONN) at the mountpoint."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        _wait_gone(pid, KILL_SLOW_S)
        early = f"after {KILL_SLOW_S:.0f} s:\n{thread_dump(pid)}" if _alive(pid) else ""
        _wait_gone(pid, KILL_WAIT_S - KILL_SLOW_S)
        if _alive(pid):
            raise MountFailed(
                f"daemon {pid} still alive {KILL_WAIT_S:.0f} s after SIGKILL; {early}\n"
                f"after {KILL_WAIT_S:.0f} s:\n{thread_dump(pid)}"
            )
        if early:
            print(f"daemon {pid} took {time.monotonic() - started:.1f} s to end after SIGKILL; {early}", flush=True)

    def flush(self, timeout_s: float = 180.0) -> None:
        result = self._cli([RAZORFS_BIN, "flush", str(self.mountpoint), "--timeout", str(timeout_s)], timeout_s + 30)
        if result.returncode != 0:
            raise MountFailed(f"razorfs flush exited {result.returncode}: {result.stderr.strip()}\n{self.log_tail()}")

    def umount(self, timeout_s: float = 180.0) -> None:
        result = self._cli([RAZORFS_BIN, "umount", str(self.mountpoint), "--timeout", str(timeout_s)], timeout_s + 30)
        if result.returncode != 0:
            raise MountFailed(f"razorfs umount exited {result.returncode}: {result.stderr.strip()}\n{self.log_tail()}")

    def diagnostics(self) -> str:
        """What the kernel and /proc say about this mount's earlier daemons and its mountpoint."""
        target = os.path.realpath(self.mountpoint)
        with open("/proc/self/mountinfo") as mounts:
            layers = [line.strip() for line in mounts if line.split()[4] == target]
        states = []
        for pid in self.pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
            except OSError:
                state = "gone"
            states.append(f"{pid}:{state}" + (f" ({blocked_threads(pid)})" if state not in ("gone", "Z") else ""))
        return (
            f"mount layers at {target}: {layers or 'none'}; earlier daemons: {', '.join(states) or 'none'}; "
            f"processes holding /dev/fuse: {fuse_holders() or 'none'}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no daemon log)"
        return "\n".join(text.splitlines()[-lines:])

    def cleanup(self) -> None:
        """Kill whatever daemon this object started, then unmount (lazily: the mount may be dead
        or busy). A daemon SIGKILL does not end (a thread waiting on a request to its own mount,
        which it will never answer) is freed by aborting the mount's FUSE connection; a lazy
        unmount does not free it (measured), and would hide the mount that names the connection."""
        for pid in {*self.pids, *([p] if (p := self.pid()) else [])}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, KILL_SLOW_S)
            if _alive(pid):
                abort_connection(self.mountpoint)
            _wait_gone(pid, KILL_WAIT_S)
        force_unmount(self.mountpoint)
        if is_mounted(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True, check=False)

    def _cli(self, argv: list[str], timeout_s: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False)


def fuse_holders() -> list[str]:
    """Every process with /dev/fuse open (a FUSE connection lives until the last one closes it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        # A killed process whose leader is a zombie shows its descriptors only in its live threads.
        for fds in [proc / "fd", *proc.glob("task/*/fd")]:
            try:
                if any(os.readlink(fd) == "/dev/fuse" for fd in fds.iterdir()):
                    found.append(f"{proc.name} {(proc / 'cmdline').read_bytes().replace(bytes(1), b' ')[:120]!r}")
                    break
                if any(fds.iterdir()):
                    break  # the leader's table is every thread's
            except OSError:
                continue
    return found


def blocked_threads(pid: int) -> str:
    """Where a process's threads sleep in the kernel (state and wait channel): a process SIGKILL
    cannot end is stuck in an uninterruptible wait, e.g. on a request to its own FUSE mount."""
    found = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            state = (task / "stat").read_text().split(") ")[-1][:1]
            wchan = (task / "wchan").read_text().strip()
            syscall = (task / "syscall").read_text().split(" ")[0]
        except OSError:
            continue
        found.append(f"tid {task.name} state {state} wchan {wchan} syscall {syscall}")
    return "; ".join(found) or "(no threads readable)"


def thread_dump(pid: int) -> str:
    """Every thread of `pid`: state, CPU time, wait channel, system call (number and arguments,
    or `running`) and kernel stack; a perf sample of the kernel stacks of threads that are running
    (a running thread has no readable stack); and the FUSE connections' waiting requests."""
    lines = []
    running = []
    for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
        try:
            comm, _, rest = (task / "stat").read_text().partition(") ")
            fields = rest.split()
            wchan = (task / "wchan").read_text().strip() or "-"
            syscall = (task / "syscall").read_text().strip()
            stack = [line.split("] ", 1)[-1] for line in (task / "stack").read_text().splitlines()]
        except OSError as err:
            lines.append(f"tid {task.name}: {err.strerror}")
            continue
        cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        if fields[0] == "R":
            running.append(task.name)
        lines.append(
            f"tid {task.name} {comm.split('(', 1)[-1]} state {fields[0]} cpu {cpu_s:.2f} s (system "
            f"{int(fields[12]) / os.sysconf('SC_CLK_TCK'):.2f} s) wchan {wchan} syscall {syscall}"
            + (f"\n    stack: {' < '.join(stack)}" if stack else "")
        )
    if running:
        lines.append(running_stacks(running))
    waiting = []
    for conn in sorted(Path("/sys/fs/fuse/connections").glob("*")):
        with contextlib.suppress(OSError):
            waiting.append(f"{conn.name}: {(conn / 'waiting').read_text().strip()}")
    lines.append(f"FUSE connections waiting: {', '.join(waiting) or 'none (or fusectl not mounted)'}")
    lines.append(f"processes holding /dev/fuse: {fuse_holders() or 'none'}")
    return "\n".join(lines)


def running_stacks(tids: list[str], seconds: float = 2.0) -> str:
    """Where running threads spend their time, kernel stacks included, from a `perf` sample."""
    if shutil.which("perf") is None:
        return f"running threads {tids}: no perf to sample them"
    with tempfile.TemporaryDirectory() as tmp:
        data = f"{tmp}/perf.data"
        record = ["perf", "record", "-q", "-e", "cpu-clock", "-g", "-t", ",".join(tids), "-o", data]
        subprocess.run([*record, "--", "sleep", str(seconds)], capture_output=True, check=False, timeout=30)
        report = ["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "5"]
        result = subprocess.run(report, capture_output=True, text=True, check=False, timeout=60)
    body = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]
    return f"perf sample of running threads {tids}:\n" + "\n".join(body[:80])


def _alive(pid: int) -> bool:
    """True while any thread of `pid` is not a zombie: a killed process whose leader is already a
    zombie still holds its files (the /dev/fuse descriptor among them) until its last thread ends."""
    tasks = list(Path(f"/proc/{pid}/task").glob("*"))
    for task in tasks:
        try:
            if (task / "stat").read_text().split(") ")[-1][:1] != "Z":
                return True
        except OSError:
            continue
    return False


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
