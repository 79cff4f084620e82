"""ServiceAccount mounts of an `authentication: pod` volume: its stage has no daemon (no token
exists before a pod comes), and the pods of each ServiceAccount (and fsGroup) see the volume
through a mount of their own beside the kubelet's staging path, whose daemon signs with the keys
STS issues for that ServiceAccount's token. Pods with different ServiceAccounts never share a
daemon, a cache or a token.

The token lives in the mount's own directory (`<cache-root>/<key>/serviceaccount-token`, all a
mount pod sees of the node), created 0600 under the plugin's umask and replaced by a rename at
every publish: kubelet calls NodePublishVolume again with a fresh token before the old one expires
(requiresRepublish), and the daemon reads the file anew whenever it asks STS for keys. Released
like an fsGroup mount, with the last pod (publishing.py) or at unstage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.mount_records import (
    TOKEN_FILE_NAME,
    make_mount_dir,
    service_account_mount_id,
    service_account_record,
    service_account_staging_path,
)
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.pod_identity import PodIdentity
from razorfs.csi.private_files import PRIVATE_FILE_MODE
from razorfs.csi.staged_volume import StagedVolume, StagedVolumes

log = logging.getLogger(__name__)


class ServiceAccountMounts:
    def __init__(self, volumes: StagedVolumes, launcher: DaemonLauncher, cache_root: Path):
        self.volumes = volumes
        self.launcher = launcher
        self.cache_root = cache_root

    async def mount_for(self, volume: StagedVolume, identity: PodIdentity, group: int | None) -> StagedVolume:
        """The mount serving `volume` to `identity`'s pods (of fsGroup `group`, None: the stage's),
        with the token just received in its file; made if there is none yet. The caller holds
        `volume`'s lock."""
        parent = volume.record
        if group == parent.mount_group:
            group = None
        mount_id = service_account_mount_id(parent.volume_id, identity.name, group)
        existing = self.volumes.find(mount_id)
        if existing is not None:
            # A republish (or another pod of the ServiceAccount): the daemon's next STS call reads it.
            await asyncio.to_thread(write_token, Path(existing.record.cache_dir).parent, identity.token)
            return existing
        mount_dir = make_mount_dir(self.cache_root, mount_id, "")
        await asyncio.to_thread(write_token, mount_dir.cache_dir.parent, identity.token)
        staging = service_account_staging_path(volume.staging_path, mount_id)
        staging.mkdir(mode=0o755, exist_ok=True)
        record = service_account_record(parent, mount_id, identity.name, group, staging, mount_dir)
        try:
            mount = await self.launcher.bring_up(record, Credentials())
        except BaseException:
            with contextlib.suppress(OSError):
                staging.rmdir()
            raise
        self.volumes.add(mount)
        log.info("volume %s: a mount for ServiceAccount %s at %s", parent.volume_id, identity.name, staging)
        return mount


def write_token(directory: Path, token: str) -> None:
    """Replaces `<directory>/serviceaccount-token` with `token` in one rename, so the daemon reads
    the old token or the new one, never a part. The new file is created 0600 (O_EXCL|O_NOFOLLOW,
    under the plugin's umask, never chmodded) and given to the directory's owner (a mount pod's
    user) before it takes the name."""
    final = directory / TOKEN_FILE_NAME
    temporary = directory / f".{TOKEN_FILE_NAME}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(token.encode())
            handle.flush()
            os.fsync(handle.fileno())
        owner = directory.stat()
        if owner.st_uid != os.geteuid():
            os.chown(temporary, owner.st_uid, owner.st_gid)
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
