"""A `razorfs-node` process for tests, plus the cleanup that leaves no daemon or mount behind.

The plugin runs in its own process group; the mount daemons it starts run in their own sessions
(by design they outlive the plugin), so teardown kills them from the state dir's records and
from /proc (any process whose command line names this test's cache root), then force-unmounts
everything under the test's kubelet dir, deepest first."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc
from razorfs_wire.razorfs.v1 import node_admin_pb2_grpc
from tests.realparts.fusemount import force_unmount
from tests.realparts.processes import free_port, wait_until

NODE_BIN = Path(sys.executable).with_name("razorfs-node")
ADMIN_TOKEN = "test-admin-token-7Hq2"


@dataclass
class NodePlugin:
    root: Path
    mode: str = "all"
    node_id: str = "test-node"
    health_check_interval_s: float = 0.2
    extra_args: list[str] = field(default_factory=list)
    # Replaces the shared --admin-token-file (e.g. TokenReview flags) when not None.
    admin_auth_args: list[str] | None = None
    # Added to the plugin's environment after the test runner's AWS_* variables are dropped.
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    admin_port: int = 0
    starts: int = 0

    @property
    def socket_path(self) -> Path:
        return self.root / "plugin" / "csi.sock"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def cache_root(self) -> Path:
        return self.root / "cache"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def log_path(self) -> Path:
        return self.root / "plugin" / f"plugin-{self.starts}.log"

    def start(self, wait_ready: bool = True) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.kubelet_dir.mkdir(parents=True, exist_ok=True)
        token_file = self.root / "plugin" / "admin-token"
        token_file.write_text(ADMIN_TOKEN + "\n")
        if not self.admin_port:
            self.admin_port = free_port()
        self.starts += 1
        argv = [
            str(NODE_BIN),
            "--endpoint",
            f"unix://{self.socket_path}",
            "--node-id",
            self.node_id,
            "--state-dir",
            str(self.state_dir),
            "--cache-root",
            str(self.cache_root),
            "--kubelet-dir",
            str(self.kubelet_dir),
            "--mode",
            self.mode,
            "--admin-address",
            f"127.0.0.1:{self.admin_port}",
            *(["--admin-token-file", str(token_file)] if self.admin_auth_args is None else self.admin_auth_args),
            "--health-check-interval",
            str(self.health_check_interval_s),
            "--log-level",
            "INFO",
            *self.extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if wait_ready:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"razorfs-node exited with {self.proc.returncode}: {self.log_tail()}")
            if not self.socket_path.exists():
                return False
            with self.channel() as channel:
                probe = csi_pb2_grpc.IdentityStub(channel).Probe(csi_pb2.ProbeRequest(), timeout=2)
            return bool(probe.ready.value)

        try:
            wait_until(ready, timeout_s, "razorfs-node ready", 0.1)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nplugin log:\n{self.log_tail()}") from None

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix://{self.socket_path}")

    def admin_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.admin_port}")

    def identity(self, channel: grpc.Channel) -> csi_pb2_grpc.IdentityStub:
        return csi_pb2_grpc.IdentityStub(channel)

    def node(self, channel: grpc.Channel) -> csi_pb2_grpc.NodeStub:
        return csi_pb2_grpc.NodeStub(channel)

    def controller(self, channel: grpc.Channel) -> csi_pb2_grpc.ControllerStub:
        return csi_pb2_grpc.ControllerStub(channel)

    def admin(self, channel: grpc.Channel) -> node_admin_pb2_grpc.NodeAdminStub:
        return node_admin_pb2_grpc.NodeAdminStub(channel)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc = None

    def daemon_pids(self) -> list[int]:
        """Mount daemons recorded in the state dir."""
        pids = []
        for record in self.state_dir.glob("volumes/*/volume.json"):
            try:
                daemon = json.loads(record.read_text()).get("daemon")
            except (OSError, ValueError):
                continue
            if daemon:
                pids.append(int(daemon["pid"]))
        return pids

    def cleanup(self) -> None:
        self.kill()
        victims = set(self.daemon_pids()) | set(_pids_mentioning(str(self.cache_root)))
        for pid in victims:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(pid) for pid in victims):
            time.sleep(0.05)
        for mountpoint in sorted(_mounts_under(self.root), key=len, reverse=True):
            force_unmount(Path(mountpoint))
        # The state dir's credential files hold the stage secrets by design (a dead daemon is
        # restarted with them); a test that ends with volumes still staged removes them here.
        for credentials in self.state_dir.glob("volumes/*/credentials.json"):
            credentials.unlink()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table]
    return sorted({p for p in points if p.startswith(prefix)})
