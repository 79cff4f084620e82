"""Recovery of a mount whose daemon died (or whose mount is dead): a new session at the staging
path, served by a new daemon on the same cache dir (it replays its journal), bound again over
every target; and the events that tell the RazorVolume and the workload pods about it. A recovery
that fails marks the mount Failed and is tried again after a growing back-off. Callers hold the
mount's lock."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from razorfs.csi.daemon_hosts import DaemonHost
from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.events import EventRecorder, ObjectRef
from razorfs.csi.staged_volume import RECOVERY_BACKOFF_FIRST_S, StagedVolume, VolumeState
from razorfs.csi.state_store import StateStore, VolumeRecord
from razorfs.csi.target_binds import rebind_targets

log = logging.getLogger(__name__)

RECOVERY_BACKOFF_MAX_S = 30.0


@dataclass(eq=False)
class Recovery:
    store: StateStore
    host: DaemonHost
    launcher: DaemonLauncher
    events: EventRecorder
    node_id: str

    async def recover(self, volume: StagedVolume, reason: str) -> None:
        """Kills what is left of the daemon, starts a new one on the same cache dir (it replays
        its journal) and binds the new mount over every target.

        The dead target mounts stay in place until the new bind covers them: unmounting them first
        would show pods the empty directory underneath, and a write there would land on the
        node's disk instead of the volume. A pod sees ENOTCONN for the few seconds of the restart,
        never a wrong directory. The covered dead layers go away at unpublish."""
        record = volume.record
        log.warning("recovering volume %s: %s", record.volume_id, reason)
        volume.state = VolumeState.RECOVERING
        await self.host.discard(record)
        await self.launcher.start(volume)
        await rebind_targets(self.store, volume)
        record.restarts += 1
        self.store.save(record)
        volume.state = VolumeState.MOUNTED
        volume.dead_mount_strikes = 0
        volume.recovery_backoff_s = RECOVERY_BACKOFF_FIRST_S
        volume.last_error = ""
        log.info("volume %s serving again (%s)", record.volume_id, self.host.describe(record))
        await self.tell(
            record,
            "MountRecovered",
            f"RazorFS on node {self.node_id}: {reason}; a new session serves the volume again (journal "
            "replayed, nothing close() acknowledged is lost). Descriptors opened before fail (EIO on write, "
            "ENOTCONN on read): open them again.",
        )

    async def mark_failed(self, volume: StagedVolume, exc: BaseException) -> None:
        first = volume.state is not VolumeState.FAILED
        volume.state = VolumeState.FAILED
        volume.last_error = str(exc)
        volume.next_recovery_at = time.monotonic() + volume.recovery_backoff_s
        volume.recovery_backoff_s = min(volume.recovery_backoff_s * 2, RECOVERY_BACKOFF_MAX_S)
        log.error("volume %s failed: %s", volume.record.volume_id, exc)
        if first:
            message = f"RazorFS on node {self.node_id}: the mount could not be restored, retrying: {exc}"
            await self.tell(volume.record, "MountFailed", message, warning=True)

    async def tell(self, record: VolumeRecord, reason: str, message: str, warning: bool = False) -> None:
        """An event on the RazorVolume and on each workload pod using the mount."""
        about = [ObjectRef.pod(p["namespace"], p["name"], p.get("uid", "")) for p in record.target_pods.values()]
        volume_ref = ObjectRef.razor_volume(record.razor_volume)
        if volume_ref is not None:
            about.append(volume_ref)
        for ref in about:
            await self.events.emit(ref, reason, message, warning)
