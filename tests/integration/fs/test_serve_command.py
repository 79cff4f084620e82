"""`razorfs serve`, what a mount pod runs: as its container's PID 1 (here: PID 1 of a new PID
namespace) it still stops at SIGTERM while it waits for a session, so deleting an idle mount pod
does not take its whole grace period; and a handover it cannot use is refused with the reason."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from razorfs.mount.handover import Handover, HandoverError, offer
from tests.realparts.processes import wait_until

RAZORFS = Path(sys.executable).with_name("razorfs")


def _serve(socket_path: Path, pid_namespace: bool) -> subprocess.Popen[bytes]:
    argv = [str(RAZORFS), "serve", "--handover-socket", str(socket_path)]
    if pid_namespace:
        argv = ["unshare", "--pid", "--fork", "--kill-child", *argv]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_waiting_daemon_that_is_pid_1_stops_at_sigterm(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("real part missing: unshare (util-linux) is needed to run the daemon as PID 1", pytrace=False)
    socket_path = tmp_path / "handover.sock"
    proc = _serve(socket_path, pid_namespace=True)
    try:
        wait_until(socket_path.exists, timeout_s=60, what="the daemon listens")
        (daemon_pid,) = [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=True).stdout.split()]
        status = Path(f"/proc/{daemon_pid}/status").read_text()
        (nspid,) = [line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")]
        assert nspid[-1] == "1", "PID 1 in its namespace, as in a container"
        os.kill(daemon_pid, signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        assert not socket_path.exists(), "the socket file goes with the daemon"
    finally:
        proc.kill()
        proc.wait()


def test_a_handover_it_cannot_use_is_refused_with_the_reason_and_it_waits_again(tmp_path: Path) -> None:
    socket_path = tmp_path / "handover.sock"
    proc = _serve(socket_path, pid_namespace=False)
    try:
        wait_until(socket_path.exists, timeout_s=60, what="the daemon listens")
        fuse_fd = os.open("/dev/null", os.O_RDWR)
        try:
            with pytest.raises(HandoverError, match="--cache-dir"):
                offer(socket_path, Handover(["mount", "s3://bucket", "/mnt"]), fuse_fd, 10, 30)
        finally:
            os.close(fuse_fd)
        wait_until(socket_path.exists, timeout_s=30, what="the daemon waits for the next attempt")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
