"""The bind mounts of a mount's staging path into pod target paths (read-only when asked), each
recorded in the mount's record before it is made, so a restarted plugin or a recovery binds it
again. Callers hold the mount's lock."""

from __future__ import annotations

import logging
from pathlib import Path

from razorfs.csi import mounts
from razorfs.csi.errors import AlreadyExists, Unavailable
from razorfs.csi.staged_volume import StagedVolume, VolumeState
from razorfs.csi.state_store import StateStore

log = logging.getLogger(__name__)


async def bind_target(
    store: StateStore, volume: StagedVolume, target: Path, read_only: bool, pod: dict[str, str] | None
) -> None:
    """Binds `volume` at `target` for `pod`; a repeated call for a live bind is a no-op."""
    key = str(target)
    if key in volume.record.targets:
        if volume.record.targets[key] != read_only:
            raise AlreadyExists(f"{target} is already published with readonly={volume.record.targets[key]}")
        if mounts.is_mounted(target) and await mounts.mount_health(target) is not mounts.MountHealth.DEAD:
            return
    if volume.state is not VolumeState.MOUNTED:
        raise Unavailable(f"volume {volume.record.volume_id} is {volume.state.value}: {volume.last_error}")
    if mounts.is_mounted(target) and key not in volume.record.targets:
        raise AlreadyExists(f"{target} is already a mount point")
    await mounts.make_target(target)
    volume.record.targets[key] = read_only
    if pod:
        volume.record.target_pods[key] = pod
    store.save(volume.record)
    try:
        await mounts.bind(volume.staging_path, target, read_only)
    except BaseException:
        del volume.record.targets[key]
        volume.record.target_pods.pop(key, None)
        store.save(volume.record)
        raise


async def rebind_targets(store: StateStore, volume: StagedVolume) -> None:
    """Binds the staging mount at every recorded target that is missing or dead (a fresh
    bind stacks over a dead one). A target whose parent directory is gone belonged to a pod
    kubelet has already cleaned up: it is forgotten, not re-created."""
    for target, read_only in list(volume.record.targets.items()):
        path = Path(target)
        if mounts.is_mounted(path) and await mounts.mount_health(path) is not mounts.MountHealth.DEAD:
            continue
        if not mounts.is_mounted(path) and not await mounts.parent_exists(path):
            del volume.record.targets[target]
            volume.record.target_pods.pop(target, None)
            store.save(volume.record)
            log.warning("forgot target %s of volume %s: its pod directory is gone", target, volume.record.volume_id)
            continue
        await mounts.make_target(path)
        await mounts.bind(volume.staging_path, path, read_only)
        log.info("bound %s again for volume %s", target, volume.record.volume_id)


def forget_target(store: StateStore, volume: StagedVolume, target: Path) -> bool:
    """Drops `target` from the mount's record (its bind is already gone); False if it had none."""
    volume.record.target_pods.pop(str(target), None)
    if volume.record.targets.pop(str(target), None) is None:
        return False
    store.save(volume.record)
    return True
