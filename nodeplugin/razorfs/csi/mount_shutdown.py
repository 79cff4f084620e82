"""The end of a mount (an unstage, the last unpublish of an fsGroup mount): its daemon flushes
every dirty file to S3 and exits, its host (process or pod) goes, the staging path is unmounted
and the mount is forgotten. Nothing is released unless the flush finished: otherwise the mount
keeps serving and the caller answers UNAVAILABLE (kubelet retries). Callers hold the mount's lock."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass

from razorfs.csi import mounts
from razorfs.csi.control_client import ControlClient
from razorfs.csi.daemon_hosts import DaemonHost, mount_dir
from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.errors import DaemonFailed, Unavailable
from razorfs.csi.recovery import Recovery
from razorfs.csi.staged_volume import StagedVolume, StagedVolumes, VolumeState
from razorfs.csi.state_store import StateStore

DAEMON_EXIT_TIMEOUT_S = 30.0
# Below kubelet's 2-minute CSI call timeout: an unstage that cannot flush answers UNAVAILABLE
# (kubelet retries) instead of being cut off mid-call.
UNSTAGE_FLUSH_TIMEOUT_S = 90.0


@dataclass(eq=False)
class MountShutdown:
    volumes: StagedVolumes
    store: StateStore
    host: DaemonHost
    launcher: DaemonLauncher
    recovery: Recovery
    flush_timeout_s: float = UNSTAGE_FLUSH_TIMEOUT_S

    async def shut_down(self, volume: StagedVolume) -> None:
        """Flushes everything to S3, ends the daemon, unmounts and forgets the mount. Raises
        Unavailable (the mount keeps serving, nothing is released) when the flush cannot finish."""
        volume_id = volume.record.volume_id
        if not await self.launcher.is_healthy(volume):
            # Dirty data may sit in the dead daemon's journal: replay it before letting go.
            await self.recovery.recover(volume, "unstage found the daemon down")
        volume.state = VolumeState.UNMOUNTING
        try:
            await ControlClient(volume.cache_dir).shutdown(self.flush_timeout_s)
        except (DaemonFailed, Unavailable) as exc:
            volume.state = VolumeState.MOUNTED
            volume.last_error = str(exc)
            raise Unavailable(f"volume {volume_id} not unstaged, its data is kept on the node: {exc}") from None
        try:
            await self.host.retire(volume.record, DAEMON_EXIT_TIMEOUT_S)
        except Unavailable:
            # Back to the health loop, which restarts the daemon (journal replay); kubelet's
            # retried unstage then flushes again. Nothing is released on a doubtful exit.
            volume.state = VolumeState.MOUNTED
            raise
        await mounts.unmount(volume.staging_path, lazy=True)
        self.launcher.unregister(volume)
        if volume.record.parent:
            with contextlib.suppress(OSError):
                volume.staging_path.rmdir()  # our own directory beside the kubelet's globalmount
        self.store.remove(volume_id)
        shutil.rmtree(mount_dir(volume.record), ignore_errors=True)
        self.volumes.remove(volume_id)

    def forget(self, volume: StagedVolume) -> None:
        """The end of a stage with no daemon of its own (`authentication: pod`; its ServiceAccount
        mounts are shut down first): only its record goes."""
        self.store.remove(volume.record.volume_id)
        self.volumes.remove(volume.record.volume_id)
