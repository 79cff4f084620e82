"""What keeps every mount serving across plugin restarts and daemon deaths: at startup the mounts
a previous plugin process left are re-adopted (a live daemon is kept as is, a dead one replaced),
then a loop checks every mount each interval and recovers one whose daemon died or whose mount is
dead. A merely slow mount is never killed. Every 30 s the host removes daemons of mounts nobody
records any more (mount pods left behind)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from razorfs.csi import mounts
from razorfs.csi.daemon import DaemonProcess
from razorfs.csi.daemon_hosts import DaemonHost, mount_dir
from razorfs.csi.daemon_launcher import DaemonLauncher
from razorfs.csi.errors import Unavailable
from razorfs.csi.mount_shutdown import MountShutdown
from razorfs.csi.recovery import Recovery
from razorfs.csi.staged_volume import StagedVolume, StagedVolumes, VolumeState
from razorfs.csi.state_store import StateStore
from razorfs.csi.target_binds import rebind_targets

log = logging.getLogger(__name__)

HEALTH_CHECK_INTERVAL_S = 1.0
# How often daemons of mounts nobody records any more are looked for (mount pods left behind).
SWEEP_INTERVAL_S = 30.0
# A daemon that is alive but whose mount keeps failing is killed after this many checks.
DEAD_MOUNT_STRIKES = 3


@dataclass(eq=False)
class HealthLoop:
    volumes: StagedVolumes
    store: StateStore
    host: DaemonHost
    launcher: DaemonLauncher
    recovery: Recovery
    shutdown: MountShutdown
    interval_s: float = HEALTH_CHECK_INTERVAL_S

    async def adopt_all(self) -> None:
        """Re-adopts every recorded volume: a live daemon is kept as is (its mounts never stop
        serving), a dead one is restarted; missing target binds are restored."""
        for record in self.store.load_all():
            volume = StagedVolume(record)
            self.volumes.add(volume)
            if record.per_service_account:
                continue  # no daemon of its own: its ServiceAccount mounts are records of their own
            async with self.volumes.lock(record.volume_id):
                try:
                    if await self.launcher.is_healthy(volume):
                        await rebind_targets(self.store, volume)
                        self.launcher.register(volume)
                        log.info("re-adopted volume %s (%s)", record.volume_id, self.host.describe(record))
                    else:
                        await self.recovery.recover(volume, "daemon found dead at plugin start")
                except Exception as exc:  # one broken volume must not keep the others from serving
                    await self.recovery.mark_failed(volume, exc)

    async def run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        while True:
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_INTERVAL_S
                try:
                    await self.host.sweep({mount_dir(v.record).name for v in self.volumes.all()})
                except Exception as exc:
                    log.warning("looking for left-behind mount daemons failed: %s", exc)
            DaemonProcess.reap()
            mounted = mounts.mounted_paths()  # one read of the mount table per round
            for volume in self.volumes.all():
                volume_id = volume.record.volume_id
                lock = self.volumes.lock(volume_id)
                if lock.locked():
                    continue  # an RPC is working on it right now
                async with lock:
                    if self.volumes.find(volume_id) is not volume:
                        continue
                    await self._check_volume(volume, mounted)
            await asyncio.sleep(self.interval_s)

    async def _check_volume(self, volume: StagedVolume, mounted: frozenset[str]) -> None:
        if volume.state is VolumeState.UNMOUNTING or volume.record.per_service_account:
            return
        if volume.record.parent and not volume.record.targets:
            # An fsGroup or ServiceAccount mount whose last unpublish could not flush: tried again
            # until it can.
            try:
                await self.shutdown.shut_down(volume)
            except Unavailable as exc:
                log.warning("mount %s not released yet: %s", volume.record.volume_id, exc)
            return
        # None: the host cannot see the process (a mount pod); a dead mount then means a dead daemon.
        alive = self.host.is_alive(volume.record)
        if (
            alive is not False
            and volume.record.staging_path in mounted
            and await mounts.mount_health(volume.staging_path) is not mounts.MountHealth.DEAD
        ):
            volume.dead_mount_strikes = 0
            volume.state = VolumeState.MOUNTED
            if any(target not in mounted for target in volume.record.targets):
                await rebind_targets(self.store, volume)
            return
        if alive is True:
            # Alive but its mount is gone or dead: give a starting or unmounting daemon a moment.
            volume.dead_mount_strikes += 1
            if volume.dead_mount_strikes < DEAD_MOUNT_STRIKES:
                return
        if time.monotonic() < volume.next_recovery_at:
            return
        reason = "mount daemon died" if not alive else "mount daemon alive but its mount is dead"
        try:
            await self.recovery.recover(volume, reason)
        except Exception as exc:
            await self.recovery.mark_failed(volume, exc)
