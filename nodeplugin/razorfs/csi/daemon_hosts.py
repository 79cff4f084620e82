"""Where a mount's daemon runs. The supervisor mounts FUSE itself and hands the session over
(razorfs.mount.handover); a host only brings a daemon to the mount's handover socket, hands it the
session, and tells what it can of the daemon's life.

- `LocalDaemons`: a process of the plugin's own (razorfs-node outside Kubernetes, the plugin
  tests). It leads its own session, so it outlives a plugin process, not its container.
- `MountPods` (mount_pods.py): one unprivileged pod per mount, which outlives the plugin's
  container too: the chart's only mode.

Every mount owns a directory `<cache-root>/<mount key>/` holding its handover socket, its CA
bundle and its cache (`cache/`); a mount pod sees that directory, and nothing else of the node, at
/razorfs."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Protocol

from razorfs.csi import daemon
from razorfs.csi.daemon import DaemonProcess
from razorfs.csi.errors import DaemonFailed, Unavailable
from razorfs.csi.spare_daemon import SpareDaemons
from razorfs.csi.state_store import VolumeRecord
from razorfs.mount.handover import (
    HANDOVER_SOCKET_FLAG,
    HANDOVER_SOCKET_NAME,
    SERVE_COMMAND,
    Handover,
    HandoverError,
    HandoverUnavailable,
    offer,
)

CACHE_SUBDIR = "cache"
CA_BUNDLE_NAME = "ca-bundle.pem"
# A daemon restarted after a crash replays its journal and checks its bucket before it serves.
# Below kubelet's 2-minute CSI call timeout, so a stage that cannot start still answers.
READY_TIMEOUT_S = 90.0
# How long one offer waits for somebody to accept before the host looks at its daemon again.
_OFFER_SLICE_S = 0.5


def mount_dir(record: VolumeRecord) -> Path:
    """The mount's own directory: the parent of its cache dir."""
    return Path(record.cache_dir).parent


def handover_socket(record: VolumeRecord) -> Path:
    return mount_dir(record) / HANDOVER_SOCKET_NAME


class DaemonHost(Protocol):
    # True when the daemons write no registry record the plugin's `razorfs` CLI can see.
    registers_mounts: bool

    async def start(self, record: VolumeRecord, request: Handover, fuse_fd: int, log_path: Path) -> None:
        """Brings up the mount's daemon and hands it the session; returns once it serves (raises
        DaemonFailed with the daemon's reason otherwise). May set `record.daemon`."""

    def describe(self, record: VolumeRecord) -> str:
        """The daemon's name in log lines ("pid 123", "mount pod razorfs-mount-...")."""

    def is_alive(self, record: VolumeRecord) -> bool | None:
        """Whether the daemon's process lives; None when the host cannot see it (then the mount's
        health alone decides)."""

    async def discard(self, record: VolumeRecord) -> None:
        """Gets rid of whatever is left of a daemon whose mount is dead, before a new session."""

    async def abandon(self, record: VolumeRecord) -> None:
        """Removes the daemon of a mount that never served (a failed stage): nothing to flush."""

    async def retire(self, record: VolumeRecord, timeout_s: float) -> None:
        """After a clean shutdown (everything flushed): waits for the daemon to end and removes
        what hosted it. Raises Unavailable when it does not end cleanly."""

    async def sweep(self, known_mounts: set[str]) -> None:
        """Removes daemons of mounts no longer recorded (a stage that died half-way, a record
        removed by hand); `known_mounts` are mount directory names."""


def default_mount_command() -> list[str]:
    """The `razorfs` CLI installed next to our interpreter, else the module."""
    beside = Path(sys.executable).with_name("razorfs")
    if beside.exists() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "razorfs.cli"]


class LocalDaemons:
    registers_mounts = False

    def __init__(self, mount_command: list[str], spares: SpareDaemons | None) -> None:
        self.mount_command = mount_command
        # A pre-started process for the next mount (None: always start fresh).
        self.spares = spares

    async def start(self, record: VolumeRecord, request: Handover, fuse_fd: int, log_path: Path) -> None:
        if record.mount_pod:
            raise DaemonFailed(
                f"volume {record.volume_id} has mountPod settings, but this node plugin runs its daemons as "
                "processes (razorfs-node without --mount-pods): they cannot apply"
            )
        socket_path = handover_socket(record)
        serve_argv = [SERVE_COMMAND, HANDOVER_SOCKET_FLAG, str(socket_path)]
        spare = self.spares.take(serve_argv, {}, log_path) if self.spares else None
        if spare is not None:
            record.daemon = DaemonProcess.track(spare)
        else:
            # The command comes from this plugin process: one upgraded in place restarts old
            # volumes with its own `razorfs`.
            record.daemon = DaemonProcess.start([*self.mount_command, *serve_argv], {}, log_path)
        self.replenish_spare()
        identity = record.daemon
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                await asyncio.to_thread(offer, socket_path, request, fuse_fd, _OFFER_SLICE_S, READY_TIMEOUT_S)
                return
            except HandoverUnavailable:
                DaemonProcess.reap()
                if not daemon.is_alive(identity):
                    code = DaemonProcess.exit_code(identity.pid)
                    raise DaemonFailed(
                        f"mount daemon exited with {code} before it was ready: {daemon.last_line(log_path)}"
                    ) from None
                if time.monotonic() > deadline:
                    raise DaemonFailed(f"mount daemon not ready after {READY_TIMEOUT_S:.0f}s") from None
            except HandoverError as err:
                raise DaemonFailed(str(err)) from None

    def replenish_spare(self) -> None:
        if self.spares is not None:
            self.spares.replenish(DaemonProcess.base_environment())

    def describe(self, record: VolumeRecord) -> str:
        return f"pid {record.daemon.pid}" if record.daemon else "no daemon"

    def is_alive(self, record: VolumeRecord) -> bool | None:
        return record.daemon is not None and daemon.is_alive(record.daemon)

    async def discard(self, record: VolumeRecord) -> None:
        if record.daemon is not None:
            daemon.kill(record.daemon)
            await daemon.wait_exit(record.daemon, 10.0)

    async def abandon(self, record: VolumeRecord) -> None:
        await self.discard(record)

    async def retire(self, record: VolumeRecord, timeout_s: float) -> None:
        assert record.daemon is not None
        if not await daemon.wait_exit(record.daemon, timeout_s):
            raise Unavailable(f"mount daemon of volume {record.volume_id} did not exit after its flush")
        exit_code = DaemonProcess.exit_code(record.daemon.pid)
        if exit_code not in (None, 0):
            raise Unavailable(f"mount daemon of volume {record.volume_id} exited with {exit_code} on shutdown")

    async def sweep(self, known_mounts: set[str]) -> None:
        return None  # a local daemon ends with its mount; nothing outlives its record

    def close(self) -> None:
        if self.spares is not None:
            self.spares.close()
