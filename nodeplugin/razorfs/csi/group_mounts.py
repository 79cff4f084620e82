"""fsGroup mounts: a pod whose fsGroup (`volume_mount_group`) differs from the stage's sees the
volume through a mount of its own, beside the kubelet's staging path
(`<staging>/../razorfs-fsgroup-<gid>`), with its own daemon and cache, made on first use. Pods of
one fsGroup share it; they see other groups' writes once those reach S3, as a pod on another node
would. It is released with the last pod of its group (publishing.py), or with its volume at
unstage."""

from __future__ import annotations

import logging
from pathlib import Path

from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.mount_records import CA_BUNDLE_FLAG, group_mount_id, group_record, group_staging_path, make_mount_dir
from razorfs.csi.staged_volume import StagedVolume, StagedVolumes
from razorfs.csi.state_store import StateStore

log = logging.getLogger(__name__)


class GroupMounts:
    def __init__(self, volumes: StagedVolumes, store: StateStore, launcher: DaemonLauncher, cache_root: Path):
        self.volumes = volumes
        self.store = store
        self.launcher = launcher
        self.cache_root = cache_root

    async def mount_for(self, volume: StagedVolume, group: int) -> StagedVolume:
        """The mount that shows `volume` with files of `group`, made if there is none yet. The
        caller holds `volume`'s lock."""
        parent = volume.record
        mount_id = group_mount_id(parent.volume_id, group)
        existing = self.volumes.find(mount_id)
        if existing is not None:
            return existing
        credentials = self.store.load_credentials(parent.volume_id)
        # Its own copy of the CA bundle: a mount pod sees its own directory only.
        ca_bundle = credentials.ca_bundle if CA_BUNDLE_FLAG in parent.argv else ""
        staging = group_staging_path(volume.staging_path, group)
        mount_dir = make_mount_dir(self.cache_root, mount_id, ca_bundle)
        staging.mkdir(mode=0o755, exist_ok=True)
        mount = await self.launcher.bring_up(group_record(parent, group, staging, mount_dir), credentials)
        self.volumes.add(mount)
        log.info("volume %s: a mount for fsGroup %d at %s", parent.volume_id, group, staging)
        return mount
