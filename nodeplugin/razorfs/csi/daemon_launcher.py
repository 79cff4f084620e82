"""How a mount gets a daemon serving it: the plugin mounts a new FUSE session at the staging path
itself (fuse_session.py) and its DaemonHost (a local process or a mount pod) brings up the daemon
and hands it the session with the `razorfs mount` arguments and the credentials.

`start` does that for a recorded mount (a stage, a recovery); `bring_up` records a new mount
first and undoes everything if its daemon never serves. `is_healthy` is the one judgment of
whether a mount's daemon still serves."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from razorfs.csi import daemon, fuse_session, mounts
from razorfs.csi.control_client import control_socket
from razorfs.csi.daemon_hosts import DaemonHost
from razorfs.csi.errors import DaemonFailed
from razorfs.csi.mount_records import complete_daemon_flags, credential_source
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.staged_volume import StagedVolume, VolumeState
from razorfs.csi.state_store import StateStore, VolumeRecord
from razorfs.errors import UsageError
from razorfs.mount import registry
from razorfs.mount.handover import Handover
from razorfs.mount.kernel_readahead import set_read_ahead
from razorfs.mount.options import parse_mount_argv
from razorfs.store.location import InvalidS3Url

log = logging.getLogger(__name__)


class DaemonLauncher:
    def __init__(self, store: StateStore, host: DaemonHost):
        self.store = store
        self.host = host

    def log_path(self, volume_id: str) -> Path:
        return self.store.volume_dir(volume_id) / "daemon.log"

    async def is_healthy(self, volume: StagedVolume) -> bool:
        """The daemon runs and its mount is not dead. A slow mount counts as healthy: a daemon
        busy flushing under back pressure must not be killed for it."""
        if self.host.is_alive(volume.record) is False or not mounts.is_mounted(volume.staging_path):
            return False
        return await mounts.mount_health(volume.staging_path) is not mounts.MountHealth.DEAD

    async def bring_up(self, record: VolumeRecord, credentials: Credentials) -> StagedVolume:
        """Records a new mount with its credentials, then starts its daemon. Recorded before the
        daemon starts: a plugin killed half-way finds the record and either adopts the daemon or
        cleans up on the retried or final unstage. A daemon that never serves is removed, its
        mount and record with it."""
        self.store.save_credentials(record.volume_id, credentials)
        self.store.save(record)
        volume = StagedVolume(record, VolumeState.RECOVERING)
        try:
            await self.start(volume)
        except BaseException:
            await self.host.abandon(record)
            await mounts.unmount(volume.staging_path, lazy=True)
            self.store.remove(record.volume_id)
            raise
        volume.state = VolumeState.MOUNTED
        return volume

    async def start(self, volume: StagedVolume) -> None:
        """Mounts a new FUSE session at the staging path (dead mounts there are let go first) and
        hands it to the volume's daemon; returns once the daemon serves it."""
        record = volume.record
        credentials = self.store.load_credentials(record.volume_id)
        complete_daemon_flags(record)
        if credential_source(record.argv) == "default-chain":
            env = daemon.node_identity_environment()
        else:
            env = daemon.explicit_environment(credentials)
        try:
            options = parse_mount_argv(record.argv)
        except (UsageError, InvalidS3Url) as exc:
            raise DaemonFailed(f"volume {record.volume_id} has unusable mount arguments: {exc}") from None
        for _ in range(8):  # bind mounts may have stacked dead sessions here
            if not mounts.is_mounted(volume.staging_path):
                break
            await mounts.unmount(volume.staging_path, lazy=True)
        fuse_fd = await asyncio.to_thread(fuse_session.mount_fuse, volume.staging_path, options)
        try:
            await self.host.start(record, Handover(record.argv, env), fuse_fd, self.log_path(record.volume_id))
        except BaseException:
            os.close(fuse_fd)  # the session ends with our copy: the mount is dead, let it go
            await mounts.unmount(volume.staging_path, lazy=True)
            raise
        finally:
            self.store.save(record)
        os.close(fuse_fd)
        # The first stat waits for the daemon's INIT reply, which fixes the readahead window.
        await mounts.mount_health(volume.staging_path)
        await asyncio.to_thread(set_read_ahead, volume.staging_path)
        self.register(volume)

    def register(self, volume: StagedVolume) -> None:
        """A daemon elsewhere (a mount pod) writes no registry record this container can see: the
        plugin writes it, so `razorfs status`, `flush` and `warmup` in the plugin's container find
        the mount by its staging path (through the control socket; the pid is the plugin's)."""
        if not self.host.registers_mounts:
            return
        record = registry.MountRecord(
            mountpoint=volume.record.staging_path,
            cache_dir=volume.record.cache_dir,
            control_socket=str(control_socket(volume.cache_dir)),
            pid=os.getpid(),
        )
        try:
            registry.write_record(record)
        except OSError as exc:
            log.warning("no registry record for %s (razorfs status will not list it): %s", volume.staging_path, exc)

    def unregister(self, volume: StagedVolume) -> None:
        if self.host.registers_mounts:
            registry.remove_record(volume.record.staging_path, os.getpid())
