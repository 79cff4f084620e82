"""NodeStageVolume and NodeUnstageVolume: a staged volume is a FUSE mount at the kubelet's
staging path, served by its own daemon. A repeated stage with the same path and capability
answers OK (restarting a dead daemon); an unstage refuses while targets are still published,
then shuts down the volume's fsGroup mounts and the volume itself (flushing all to S3 first).

An `authentication: pod` volume is staged without a daemon or a Secret: only its record is kept,
and its pods' ServiceAccounts get the mounts (service_account_mounts.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from razorfs.csi import mounts
from razorfs.csi.daemon_hosts import CACHE_SUBDIR, DaemonHost
from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.errors import AlreadyExists, FailedPrecondition, NotFound
from razorfs.csi.mount_records import MountDir, StageRequest, make_mount_dir, stage_record
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.mount_shutdown import MountShutdown
from razorfs.csi.recovery import Recovery
from razorfs.csi.staged_volume import StagedVolume, StagedVolumes, VolumeState
from razorfs.csi.state_store import StateStore, volume_key

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Staging:
    volumes: StagedVolumes
    store: StateStore
    host: DaemonHost
    launcher: DaemonLauncher
    recovery: Recovery
    shutdown: MountShutdown
    cache_root: Path

    async def stage(self, request: StageRequest) -> None:
        if not request.settings.uses_node_identity and not request.settings.uses_pod_identity:
            # Checked on every stage, a repeated one too: a Secret emptied after the PV exists
            # must fail here, not leave the daemon to find some other identity.
            request.credentials.require_complete()
        async with self.volumes.lock(request.volume_id):
            existing = self.volumes.find(request.volume_id)
            if existing is not None:
                if existing.record.staging_path != str(request.staging_path):
                    raise AlreadyExists(
                        f"volume {request.volume_id} is already staged at {existing.record.staging_path}"
                    )
                if existing.record.capability != request.capability:
                    raise AlreadyExists(f"volume {request.volume_id} is staged with another capability")
                if not existing.record.per_service_account and not await self.launcher.is_healthy(existing):
                    await self.recovery.recover(existing, "stage called while the daemon was down")
                return
            if request.settings.uses_pod_identity:
                self._stage_per_service_account(request)
                return
            await self._stage_new(request)

    async def _stage_new(self, request: StageRequest) -> None:
        staging = request.staging_path
        if mounts.is_mounted(staging):
            if not await mounts.is_dead(staging):
                raise FailedPrecondition(f"staging path {staging} is already a mount point of something else")
            await mounts.unmount(staging, lazy=True)
        staging.mkdir(parents=True, exist_ok=True)
        self.store.volume_dir(request.volume_id).mkdir(mode=0o700, parents=True, exist_ok=True)
        mount_dir = make_mount_dir(self.cache_root, request.volume_id, request.credentials.ca_bundle)
        # A volume on the node's identity keeps no keys (only its CA bundle).
        kept = request.credentials
        if request.settings.uses_node_identity:
            kept = Credentials(ca_bundle=kept.ca_bundle)
        volume = await self.launcher.bring_up(stage_record(request, mount_dir), kept)
        self.volumes.add(volume)
        log.info("staged volume %s at %s (%s)", request.volume_id, staging, self.host.describe(volume.record))

    def _stage_per_service_account(self, request: StageRequest) -> None:
        """Records the volume and nothing more: no token exists before a pod publishes it."""
        request.staging_path.mkdir(parents=True, exist_ok=True)
        own_dir = self.cache_root / volume_key(request.volume_id)  # never made: no daemon, no cache
        record = stage_record(request, MountDir(own_dir / CACHE_SUBDIR, None), per_service_account=True)
        self.store.save(record)
        self.volumes.add(StagedVolume(record, VolumeState.MOUNTED))
        log.info("staged volume %s at %s (mounts per ServiceAccount)", request.volume_id, request.staging_path)

    async def unstage(self, volume_id: str, staging_path: Path) -> None:
        async with self.volumes.lock(volume_id):
            volume = self.volumes.find(volume_id)
            if volume is None:
                if mounts.is_mounted(staging_path) and not await mounts.is_dead(staging_path):
                    raise FailedPrecondition(f"{staging_path} is mounted but volume {volume_id} is not staged here")
                await mounts.unmount(staging_path, lazy=True)
                return
            if volume.record.staging_path != str(staging_path):
                raise NotFound(f"volume {volume_id} is staged at {volume.record.staging_path}, not {staging_path}")
            group_mounts = self.volumes.group_mounts(volume_id)
            still_published = [
                t for m in [volume, *group_mounts] for t in m.record.targets if mounts.is_mounted(Path(t))
            ]
            if still_published:
                raise FailedPrecondition(f"volume {volume_id} is still published at {', '.join(still_published)}")
            for group_mount in group_mounts:
                async with self.volumes.lock(group_mount.record.volume_id):
                    await self.shutdown.shut_down(group_mount)
            if volume.record.per_service_account:
                self.shutdown.forget(volume)
            else:
                await self.shutdown.shut_down(volume)
            log.info("unstaged volume %s", volume_id)
