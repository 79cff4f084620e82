"""The mount supervisor: the one object the CSI Node and NodeAdmin servers talk to. It wires the
parts that keep one mount daemon per staged volume (and per other fsGroup) and answers for them:

- `staged_volume.py`: the mounts in memory, their states and per-mount locks
- `mount_records.py`: a new mount's record and directory (stage, fsGroup)
- `daemon_launcher.py`: a new FUSE session handed to a daemon brought up by the DaemonHost
- `staging.py`, `publishing.py` (with `target_binds.py`, `group_mounts.py`,
  `service_account_mounts.py`): the CSI node calls
- `health_loop.py`, `recovery.py`: re-adoption at start, the health loop, recovery of dead daemons
- `mount_shutdown.py`: flush, end the daemon, unmount, forget
- `credential_updates.py`: new keys for running mounts

Operations on one mount are serialized by its lock (StagedVolumes.lock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from razorfs.csi import credential_updates
from razorfs.csi.control_client import ControlClient
from razorfs.csi.daemon_hosts import DaemonHost
from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.errors import FailedPrecondition, Unavailable
from razorfs.csi.events import EventRecorder, NoEvents
from razorfs.csi.group_mounts import GroupMounts
from razorfs.csi.health_loop import HEALTH_CHECK_INTERVAL_S, HealthLoop
from razorfs.csi.mount_records import StageRequest
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.mount_shutdown import UNSTAGE_FLUSH_TIMEOUT_S, MountShutdown
from razorfs.csi.pod_identity import PodIdentity
from razorfs.csi.publishing import Publishing
from razorfs.csi.recovery import Recovery
from razorfs.csi.service_account_mounts import ServiceAccountMounts
from razorfs.csi.staged_volume import StagedVolume, StagedVolumes, VolumeState
from razorfs.csi.staging import Staging
from razorfs.csi.state_store import StateStore


class Supervisor:
    def __init__(
        self,
        store: StateStore,
        cache_root: Path,
        host: DaemonHost,
        health_check_interval_s: float = HEALTH_CHECK_INTERVAL_S,
        unstage_flush_timeout_s: float = UNSTAGE_FLUSH_TIMEOUT_S,
        events: EventRecorder | None = None,
        node_id: str = "",
    ):
        self.store = store
        self.host = host
        self.volumes = StagedVolumes()
        self.ready = False
        self.launcher = DaemonLauncher(store, host)
        recovery = Recovery(store, host, self.launcher, events or NoEvents(), node_id)
        shutdown = MountShutdown(self.volumes, store, host, self.launcher, recovery, unstage_flush_timeout_s)
        self._health = HealthLoop(self.volumes, store, host, self.launcher, recovery, shutdown, health_check_interval_s)
        self._staging = Staging(self.volumes, store, host, self.launcher, recovery, shutdown, cache_root)
        groups = GroupMounts(self.volumes, store, self.launcher, cache_root)
        service_accounts = ServiceAccountMounts(self.volumes, self.launcher, cache_root)
        self._publishing = Publishing(self.volumes, store, groups, service_accounts, shutdown)

    def daemon_logs(self) -> dict[str, Path]:
        """The log file of each mount's daemon, by mount id (for the log relay)."""
        return {volume_id: self.launcher.log_path(volume_id) for volume_id in self.volumes.ids()}

    # -- startup and health ---------------------------------------------------------------------

    async def adopt_all(self) -> None:
        await self._health.adopt_all()
        self.ready = True

    async def run_health_checks(self) -> None:
        await self._health.run()

    # -- CSI node operations --------------------------------------------------------------------

    async def stage(self, request: StageRequest) -> None:
        await self._staging.stage(request)

    async def unstage(self, volume_id: str, staging_path: Path) -> None:
        await self._staging.unstage(volume_id, staging_path)

    async def publish(
        self,
        volume_id: str,
        staging_path: Path,
        target: Path,
        read_only: bool,
        mount_group: int | None = None,
        pod: dict[str, str] | None = None,
        identity: PodIdentity | None = None,
    ) -> None:
        await self._publishing.publish(volume_id, staging_path, target, read_only, mount_group, pod, identity)

    async def unpublish(self, volume_id: str, target: Path) -> None:
        await self._publishing.unpublish(volume_id, target)

    def mount_at(self, volume_id: str, path: str) -> StagedVolume:
        return self.volumes.mount_at(volume_id, path)

    # -- queries and admin operations -----------------------------------------------------------

    def get(self, volume_id: str) -> StagedVolume:
        return self.volumes.get(volume_id)

    def _served(self, volume_id: str, mount: StagedVolume | None = None) -> StagedVolume:
        """The mount whose daemon answers for `volume_id`, or Unavailable / FailedPrecondition."""
        volume = mount or self.get(volume_id)
        if volume.record.per_service_account:
            raise FailedPrecondition(
                f"volume {volume_id} has no daemon of its own: with authentication pod each ServiceAccount's pods "
                "have their own mount"
            )
        if volume.state is not VolumeState.MOUNTED:
            raise Unavailable(f"volume {volume_id} is {volume.state.value}")
        return volume

    def staged(self) -> list[StagedVolume]:
        return self.volumes.staged()

    async def stats(self, volume_id: str, timeout_s: float = 5.0, mount: StagedVolume | None = None) -> dict[str, Any]:
        volume = self._served(volume_id, mount)
        return await ControlClient(volume.cache_dir).stats(timeout_s)

    async def flush(self, volume_id: str, timeout_s: float | None) -> int:
        volume = self._served(volume_id)
        return await ControlClient(volume.cache_dir).flush(timeout_s)

    async def update_credentials(self, volume_id: str, credentials: Credentials) -> int:
        return await credential_updates.update_credentials(self.volumes, self.store, volume_id, credentials)

    async def warm(self, volume_id: str, paths: list[str]) -> AsyncIterator[dict[str, Any]]:
        volume = self._served(volume_id)
        async for progress in ControlClient(volume.cache_dir).warm(paths):
            yield progress
