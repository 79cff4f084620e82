"""New S3 keys for a staged volume whose Secret changed (NodeAdmin UpdateCredentials): recorded for
every later daemon start of its mounts (the fsGroup mounts included) and handed to the daemons
running now, which sign with them from their next request on."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from razorfs.csi.control_client import ControlClient
from razorfs.csi.errors import FailedPrecondition
from razorfs.csi.mount_records import CA_BUNDLE_FLAG, credential_source, flag_value
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.private_files import write_private_file
from razorfs.csi.staged_volume import StagedVolumes, VolumeState
from razorfs.csi.state_store import StateStore

log = logging.getLogger(__name__)


async def update_credentials(
    volumes: StagedVolumes, store: StateStore, volume_id: str, credentials: Credentials
) -> int:
    """Returns how many daemons took the new keys."""
    volume = volumes.get(volume_id)
    source = credential_source(volume.record.argv)
    if source not in (None, "explicit"):
        whose = "each pod's ServiceAccount" if source == "web-identity" else "the node's identity"
        raise FailedPrecondition(f"volume {volume_id} signs with {whose}: it has no keys to replace")
    credentials.require_complete()
    updated = 0
    async with volumes.lock(volume_id):
        for mount in [volume, *volumes.group_mounts(volume_id)]:
            record = mount.record
            store.save_credentials(record.volume_id, credentials)
            bundle = flag_value(record.argv, CA_BUNDLE_FLAG)
            if credentials.ca_bundle and bundle is not None:
                # Read at the daemon's next start (a running one keeps its TLS setup).
                await asyncio.to_thread(write_private_file, Path(bundle), credentials.ca_bundle.encode())
            if mount.state is VolumeState.MOUNTED:
                await ControlClient(mount.cache_dir).replace_credentials(credentials)
                updated += 1
    log.info("volume %s: new S3 credentials, %d daemon(s) signing with them", volume_id, updated)
    return updated
