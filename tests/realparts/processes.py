"""Child processes of the test infrastructure: started in their own process group, always reaped.

Every real part (S3 server, etcd, kube-apiserver) is a `ManagedProcess`; `stop()` is safe to call
twice and kills the whole group, so nothing outlives a test session.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class RealPartMissing(RuntimeError):
    """A real part (binary, kernel feature) the tests need is not on this machine."""


class ProcessDied(RuntimeError):
    """A managed process exited while we waited for it to become ready."""


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_ports_start() -> int:
    """The first port the kernel hands to outgoing connections (ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(companion_offset: int = 0) -> int:
    """A free loopback port; with `companion_offset`, port+offset is free too (SeaweedFS opens
    its gRPC ports at port+10000). Both lie below the kernel's ephemeral range: an outgoing
    connection (kubelet's, the API server's) can take an ephemeral port between this check and the
    server's bind, which once failed a dev cluster's SeaweedFS with "address already in use"."""
    low, high = 12000, _ephemeral_ports_start() - 1 - companion_offset
    if high <= low:
        low, high = 20000, 65535 - companion_offset
    for _ in range(200):
        port = random.randint(low, high)
        if _port_is_free(port) and (not companion_offset or _port_is_free(port + companion_offset)):
            return port
    raise RuntimeError("no free loopback port found")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ProcessDied:
            raise
        except Exception as exc:  # readiness probes fail in many ways until the part is up
            last_error = exc
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s (last error: {last_error!r})")


class ManagedProcess:
    def __init__(self, name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> bool:
        if not self.alive():
            raise ProcessDied(f"{self.name} exited with {self.proc.returncode}; log: {self.log_tail()}")
        return True

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout_s)
        else:
            # The leader is gone; make sure no child of its group lingers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
