"""NodePublishVolume and NodeUnpublishVolume: a published target is a bind of the staged
volume's mount, or, for a pod whose fsGroup differs from the stage's, of that group's own mount
(group_mounts.py), or, for an `authentication: pod` volume, of the mount of the pod's
ServiceAccount (service_account_mounts.py); those go with the last of their pods after a flush.
A republish (kubelet's periodic call with a fresh token) refreshes the token and answers OK."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from razorfs.csi import mounts
from razorfs.csi.errors import FailedPrecondition, Unavailable
from razorfs.csi.group_mounts import GroupMounts
from razorfs.csi.mount_shutdown import MountShutdown
from razorfs.csi.pod_identity import TOKENS_KEY, PodIdentity
from razorfs.csi.service_account_mounts import ServiceAccountMounts
from razorfs.csi.staged_volume import StagedVolumes, VolumeState
from razorfs.csi.state_store import StateStore
from razorfs.csi.target_binds import bind_target, forget_target


@dataclass(eq=False)
class Publishing:
    volumes: StagedVolumes
    store: StateStore
    groups: GroupMounts
    service_accounts: ServiceAccountMounts
    shutdown: MountShutdown

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
        async with self.volumes.lock(volume_id):
            volume = self.volumes.find(volume_id)
            if volume is None:
                raise FailedPrecondition(f"volume {volume_id} is not staged on this node")
            if volume.record.staging_path != str(staging_path):
                raise FailedPrecondition(f"volume {volume_id} is staged at {volume.record.staging_path}")
            if volume.record.per_service_account:
                if identity is None:
                    raise FailedPrecondition(
                        f"volume {volume_id} signs as each pod (authentication pod) but the publish carries no "
                        f"ServiceAccount token ({TOKENS_KEY}): the CSIDriver razorfs.csi.io needs tokenRequests "
                        "with the volume's audience and requiresRepublish (the chart sets both)"
                    )
                volume = await self.service_accounts.mount_for(volume, identity, mount_group)
            elif mount_group is not None and mount_group != volume.record.mount_group:
                if volume.state is not VolumeState.MOUNTED:
                    raise Unavailable(f"volume {volume_id} is {volume.state.value}: {volume.last_error}")
                volume = await self.groups.mount_for(volume, mount_group)
            async with self.volumes.lock(volume.record.volume_id) if volume.record.parent else contextlib.nullcontext():
                await bind_target(self.store, volume, target, read_only, pod)

    async def unpublish(self, volume_id: str, target: Path) -> None:
        async with self.volumes.lock(volume_id):
            await mounts.unmount(target)
            await mounts.remove_target(target)
            volume = self.volumes.find(volume_id)
            for mount in ([volume] if volume else []) + self.volumes.group_mounts(volume_id):
                if not forget_target(self.store, mount, target):
                    continue
                if mount.record.parent and not mount.record.targets:
                    # The last pod of that fsGroup or ServiceAccount is gone: so is its mount (after a flush).
                    async with self.volumes.lock(mount.record.volume_id):
                        await self.shutdown.shut_down(mount)
