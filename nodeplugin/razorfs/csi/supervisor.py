"""The mount supervisor: one mount daemon per staged volume, each recorded in the state dir.

It stages (mounts FUSE at the staging path itself and hands the session to a daemon, which a
DaemonHost brings up: a local process or a mount pod), publishes (bind-mounts the staging path into
pod target paths), unstages (the daemon flushes every dirty file to S3, then unmounts), and keeps
volumes serving: at startup it re-adopts the daemons a previous plugin process left running, and
a health loop restarts a dead daemon on the same cache dir (journal replay) and re-binds every
published target. Operations on one volume are serialized by a per-volume lock."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from razorfs.csi import daemon, fuse_session, mounts
from razorfs.csi.control_client import ControlClient, control_socket
from razorfs.csi.daemon import DaemonProcess
from razorfs.csi.daemon_hosts import CA_BUNDLE_NAME, CACHE_SUBDIR, DaemonHost, mount_dir
from razorfs.csi.errors import AlreadyExists, DaemonFailed, FailedPrecondition, NotFound, Unavailable
from razorfs.csi.events import EventRecorder, NoEvents, ObjectRef
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.private_files import write_private_file
from razorfs.csi.state_store import StateStore, VolumeRecord, volume_key
from razorfs.errors import UsageError
from razorfs.mount import registry
from razorfs.mount.handover import Handover
from razorfs.mount.kernel_readahead import set_read_ahead
from razorfs.mount.options import parse_mount_argv
from razorfs.store.location import InvalidS3Url

log = logging.getLogger(__name__)

CREDENTIAL_SOURCE_FLAG = "--credential-source"
VOLUME_NAME_FLAG = "--volume-name"

HEALTH_CHECK_INTERVAL_S = 1.0
# How often daemons of mounts nobody records any more are looked for (mount pods left behind).
SWEEP_INTERVAL_S = 30.0
DAEMON_EXIT_TIMEOUT_S = 30.0
# A daemon that is alive but whose mount keeps failing is killed after this many checks.
DEAD_MOUNT_STRIKES = 3
RECOVERY_BACKOFF_MAX_S = 30.0
# Below kubelet's 2-minute CSI call timeout: an unstage that cannot flush answers UNAVAILABLE
# (kubelet retries) instead of being cut off mid-call.
UNSTAGE_FLUSH_TIMEOUT_S = 90.0


class VolumeState(enum.StrEnum):
    MOUNTED = "Mounted"
    RECOVERING = "Recovering"
    FAILED = "Failed"
    UNMOUNTING = "Unmounting"


@dataclass
class StagedVolume:
    record: VolumeRecord
    state: VolumeState = VolumeState.MOUNTED
    last_error: str = ""
    dead_mount_strikes: int = 0
    next_recovery_at: float = 0.0
    recovery_backoff_s: float = 0.5

    @property
    def staging_path(self) -> Path:
        return Path(self.record.staging_path)

    @property
    def cache_dir(self) -> Path:
        return Path(self.record.cache_dir)


@dataclass(frozen=True)
class StageRequest:
    volume_id: str
    staging_path: Path
    settings: MountSettings
    credentials: Credentials
    read_only: bool
    mount_group: int | None
    capability: str  # serialized capability, compared on repeated calls
    razor_volume: str = ""  # "NAMESPACE/NAME" of its RazorVolume, if known
    mount_pod: str = ""  # its mount pod settings (JSON)


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
        self.events: EventRecorder = events or NoEvents()
        self.node_id = node_id
        self.cache_root = cache_root
        self.health_check_interval_s = health_check_interval_s
        self.unstage_flush_timeout_s = unstage_flush_timeout_s
        self.volumes: dict[str, StagedVolume] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.ready = False

    def _lock(self, volume_id: str) -> asyncio.Lock:
        return self._locks.setdefault(volume_id, asyncio.Lock())

    def _log_path(self, volume_id: str) -> Path:
        return self.store.volume_dir(volume_id) / "daemon.log"

    def daemon_logs(self) -> dict[str, Path]:
        """The log file of each staged volume's daemon, by volume id (for the log relay)."""
        return {volume_id: self._log_path(volume_id) for volume_id in self.volumes}

    # -- startup and health ---------------------------------------------------------------------

    async def adopt_all(self) -> None:
        """Re-adopts every recorded volume: a live daemon is kept as is (its mounts never stop
        serving), a dead one is restarted; missing target binds are restored."""
        for record in self.store.load_all():
            volume = StagedVolume(record)
            self.volumes[record.volume_id] = volume
            async with self._lock(record.volume_id):
                try:
                    if await self._daemon_healthy(volume):
                        await self._ensure_targets_bound(volume)
                        self._register(volume)
                        log.info("re-adopted volume %s (%s)", record.volume_id, self.host.describe(record))
                    else:
                        await self._recover(volume, "daemon found dead at plugin start")
                except Exception as exc:  # one broken volume must not keep the others from serving
                    await self._mark_failed(volume, exc)
        self.ready = True

    async def run_health_checks(self) -> None:
        next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        while True:
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_INTERVAL_S
                try:
                    await self.host.sweep({mount_dir(v.record).name for v in self.volumes.values()})
                except Exception as exc:
                    log.warning("looking for left-behind mount daemons failed: %s", exc)
            DaemonProcess.reap()
            mounted = mounts.mounted_paths()  # one read of the mount table per round
            for volume_id, volume in list(self.volumes.items()):
                lock = self._lock(volume_id)
                if lock.locked():
                    continue  # an RPC is working on it right now
                async with lock:
                    if self.volumes.get(volume_id) is not volume:
                        continue
                    await self._check_volume(volume, mounted)
            await asyncio.sleep(self.health_check_interval_s)

    async def _daemon_healthy(self, volume: StagedVolume) -> bool:
        """The daemon runs and its mount is not dead. A slow mount counts as healthy: a daemon
        busy flushing under back pressure must not be killed for it."""
        if self.host.is_alive(volume.record) is False or not mounts.is_mounted(volume.staging_path):
            return False
        return await mounts.mount_health(volume.staging_path) is not mounts.MountHealth.DEAD

    async def _check_volume(self, volume: StagedVolume, mounted: frozenset[str]) -> None:
        if volume.state is VolumeState.UNMOUNTING:
            return
        if volume.record.parent and not volume.record.targets:
            # An fsGroup mount whose last unpublish could not flush: tried again until it can.
            try:
                await self._shut_down(volume)
            except Unavailable as exc:
                log.warning("fsGroup mount %s not released yet: %s", volume.record.volume_id, exc)
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
                await self._ensure_targets_bound(volume)
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
            await self._recover(volume, reason)
        except Exception as exc:
            await self._mark_failed(volume, exc)

    async def _mark_failed(self, volume: StagedVolume, exc: BaseException) -> None:
        first = volume.state is not VolumeState.FAILED
        volume.state = VolumeState.FAILED
        volume.last_error = str(exc)
        volume.next_recovery_at = time.monotonic() + volume.recovery_backoff_s
        volume.recovery_backoff_s = min(volume.recovery_backoff_s * 2, RECOVERY_BACKOFF_MAX_S)
        log.error("volume %s failed: %s", volume.record.volume_id, exc)
        if first:
            message = f"RazorFS on node {self.node_id}: the mount could not be restored, retrying: {exc}"
            await self._tell(volume.record, "MountFailed", message, warning=True)

    async def _recover(self, volume: StagedVolume, reason: str) -> None:
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
        await self._start_daemon(volume)
        await self._ensure_targets_bound(volume)
        record.restarts += 1
        self.store.save(record)
        volume.state = VolumeState.MOUNTED
        volume.dead_mount_strikes = 0
        volume.recovery_backoff_s = 0.5
        volume.last_error = ""
        log.info("volume %s serving again (%s)", record.volume_id, self.host.describe(record))
        await self._tell(
            record,
            "MountRecovered",
            f"RazorFS on node {self.node_id}: {reason}; a new session serves the volume again (journal "
            "replayed, nothing close() acknowledged is lost). Descriptors opened before fail (EIO on write, "
            "ENOTCONN on read): open them again.",
        )

    async def _tell(self, record: VolumeRecord, reason: str, message: str, warning: bool = False) -> None:
        """An event on the RazorVolume and on each workload pod using the mount."""
        about = [ObjectRef.pod(p["namespace"], p["name"], p.get("uid", "")) for p in record.target_pods.values()]
        volume_ref = ObjectRef.razor_volume(record.razor_volume)
        if volume_ref is not None:
            about.append(volume_ref)
        for ref in about:
            await self.events.emit(ref, reason, message, warning)

    async def _start_daemon(self, volume: StagedVolume) -> None:
        """Mounts a new FUSE session at the staging path (dead mounts there are let go first) and
        hands it to the volume's daemon; returns once the daemon serves it."""
        record = volume.record
        credentials = self.store.load_credentials(record.volume_id)
        if CREDENTIAL_SOURCE_FLAG not in record.argv:
            # A record from before credential sources: its volume signs with its Secret only.
            record.argv += [CREDENTIAL_SOURCE_FLAG, "explicit"]
        if VOLUME_NAME_FLAG not in record.argv:
            # The daemon's name in its log lines and metrics (never a secret: the CSI volume id).
            record.argv += [VOLUME_NAME_FLAG, record.volume_id]
        node_identity = record.argv[record.argv.index(CREDENTIAL_SOURCE_FLAG) + 1] == "default-chain"
        env = daemon.node_identity_environment() if node_identity else daemon.explicit_environment(credentials)
        try:
            options = parse_mount_argv(record.argv)
        except (UsageError, InvalidS3Url) as exc:
            raise DaemonFailed(f"volume {record.volume_id} has unusable mount arguments: {exc}") from None
        for _ in range(8):  # bind mounts may have stacked dead sessions here
            if not mounts.is_mounted(volume.staging_path):
                break
            await mounts.unmount(volume.staging_path, lazy=True)
        fuse_fd = await asyncio.to_thread(fuse_session.mount_fuse, volume.staging_path, options)
        try:
            await self.host.start(record, Handover(record.argv, env), fuse_fd, self._log_path(record.volume_id))
        except BaseException:
            os.close(fuse_fd)  # the session ends with our copy: the mount is dead, let it go
            await mounts.unmount(volume.staging_path, lazy=True)
            raise
        finally:
            self.store.save(record)
        os.close(fuse_fd)
        # The first stat waits for the daemon's INIT reply, which fixes the readahead window.
        await mounts.mount_health(volume.staging_path)
        await asyncio.to_thread(set_read_ahead, volume.staging_path)
        self._register(volume)

    def _register(self, volume: StagedVolume) -> None:
        """A daemon elsewhere (a mount pod) writes no registry record this container can see: the
        plugin writes it, so `razorfs status`, `flush` and `warmup` in the plugin's container find
        the mount by its staging path (through the control socket; the pid is the plugin's)."""
        if not self.host.registers_mounts:
            return
        record = registry.MountRecord(
            mountpoint=volume.record.staging_path,
            cache_dir=volume.record.cache_dir,
            control_socket=str(control_socket(volume.cache_dir)),
            pid=os.getpid(),
        )
        try:
            registry.write_record(record)
        except OSError as exc:
            log.warning("no registry record for %s (razorfs status will not list it): %s", volume.staging_path, exc)

    async def _ensure_targets_bound(self, volume: StagedVolume) -> None:
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
                self.store.save(volume.record)
                log.warning("forgot target %s of volume %s: its pod directory is gone", target, volume.record.volume_id)
                continue
            await mounts.make_target(path)
            await mounts.bind(volume.staging_path, path, read_only)
            log.info("bound %s again for volume %s", target, volume.record.volume_id)

    # -- CSI node operations --------------------------------------------------------------------

    async def stage(self, request: StageRequest) -> None:
        if not request.settings.uses_node_identity:
            # Checked on every stage, a repeated one too: a Secret emptied after the PV exists
            # must fail here, not leave the daemon to find some other identity.
            request.credentials.require_complete()
        async with self._lock(request.volume_id):
            existing = self.volumes.get(request.volume_id)
            if existing is not None:
                if existing.record.staging_path != str(request.staging_path):
                    raise AlreadyExists(
                        f"volume {request.volume_id} is already staged at {existing.record.staging_path}"
                    )
                if existing.record.capability != request.capability:
                    raise AlreadyExists(f"volume {request.volume_id} is staged with another capability")
                if not await self._daemon_healthy(existing):
                    await self._recover(existing, "stage called while the daemon was down")
                return
            await self._stage_new(request)

    async def _stage_new(self, request: StageRequest) -> None:
        staging = request.staging_path
        if mounts.is_mounted(staging):
            if not await mounts.is_dead(staging):
                raise FailedPrecondition(f"staging path {staging} is already a mount point of something else")
            await mounts.unmount(staging, lazy=True)
        staging.mkdir(parents=True, exist_ok=True)
        volume_dir = self.store.volume_dir(request.volume_id)
        volume_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The mount's own directory: its cache, its CA bundle, its handover socket (all a mount
        # pod sees of the node).
        own_dir = self.cache_root / volume_key(request.volume_id)
        cache_dir = own_dir / CACHE_SUBDIR
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca_bundle = None
        if request.credentials.ca_bundle:
            ca_bundle = own_dir / CA_BUNDLE_NAME
            write_private_file(ca_bundle, request.credentials.ca_bundle.encode())
        argv = request.settings.mount_argv(
            [],
            staging,
            cache_dir,
            read_only=request.read_only,
            mount_group=request.mount_group,
            ca_bundle=ca_bundle,
        )
        record = VolumeRecord(
            volume_id=request.volume_id,
            staging_path=str(staging),
            cache_dir=str(cache_dir),
            argv=argv,
            capability=request.capability,
            mount_group=request.mount_group,
            razor_volume=request.razor_volume,
            mount_pod=request.mount_pod,
        )
        # Recorded before the daemon starts: a plugin killed mid-stage finds the record and
        # either adopts the daemon or cleans up on the retried or final unstage. A volume on the
        # node's identity keeps no keys (only its CA bundle).
        kept = request.credentials
        if request.settings.uses_node_identity:
            kept = Credentials(ca_bundle=kept.ca_bundle)
        self.store.save_credentials(request.volume_id, kept)
        self.store.save(record)
        volume = StagedVolume(record, VolumeState.RECOVERING)
        try:
            await self._start_daemon(volume)
        except BaseException:
            await self.host.abandon(record)
            await mounts.unmount(staging, lazy=True)
            self.store.remove(request.volume_id)
            raise
        volume.state = VolumeState.MOUNTED
        self.volumes[request.volume_id] = volume
        log.info("staged volume %s at %s (%s)", request.volume_id, staging, self.host.describe(record))

    async def unstage(self, volume_id: str, staging_path: Path) -> None:
        async with self._lock(volume_id):
            volume = self.volumes.get(volume_id)
            if volume is None:
                if mounts.is_mounted(staging_path) and not await mounts.is_dead(staging_path):
                    raise FailedPrecondition(f"{staging_path} is mounted but volume {volume_id} is not staged here")
                await mounts.unmount(staging_path, lazy=True)
                return
            if volume.record.staging_path != str(staging_path):
                raise NotFound(f"volume {volume_id} is staged at {volume.record.staging_path}, not {staging_path}")
            group_mounts = self._group_mounts(volume_id)
            still_published = [
                t for m in [volume, *group_mounts] for t in m.record.targets if mounts.is_mounted(Path(t))
            ]
            if still_published:
                raise FailedPrecondition(f"volume {volume_id} is still published at {', '.join(still_published)}")
            for group_mount in group_mounts:
                async with self._lock(group_mount.record.volume_id):
                    await self._shut_down(group_mount)
            await self._shut_down(volume)
            log.info("unstaged volume %s", volume_id)

    async def _shut_down(self, volume: StagedVolume) -> None:
        """Flushes everything to S3, ends the daemon, unmounts and forgets the mount. Raises
        Unavailable (the mount keeps serving, nothing is released) when the flush cannot finish."""
        volume_id = volume.record.volume_id
        if not await self._daemon_healthy(volume):
            # Dirty data may sit in the dead daemon's journal: replay it before letting go.
            await self._recover(volume, "unstage found the daemon down")
        volume.state = VolumeState.UNMOUNTING
        try:
            await ControlClient(volume.cache_dir).shutdown(self.unstage_flush_timeout_s)
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
        if self.host.registers_mounts:
            registry.remove_record(volume.record.staging_path, os.getpid())
        if volume.record.parent:
            with contextlib.suppress(OSError):
                volume.staging_path.rmdir()  # our own directory beside the kubelet's globalmount
        self.store.remove(volume_id)
        shutil.rmtree(mount_dir(volume.record), ignore_errors=True)
        del self.volumes[volume_id]

    # -- fsGroup: one mount per group ---------------------------------------------------------------

    def _group_mounts(self, volume_id: str) -> list[StagedVolume]:
        return [v for v in self.volumes.values() if v.record.parent == volume_id]

    def staged(self) -> list[StagedVolume]:
        """The staged volumes (without the extra mounts made for other fsGroups)."""
        return [v for v in self.volumes.values() if not v.record.parent]

    async def _group_mount(self, volume: StagedVolume, group: int) -> StagedVolume:
        """The mount that shows `volume` with files of `group` (a pod's fsGroup other than the
        stage's), made on first use: its own daemon and cache, beside the kubelet's staging path.
        Pods of one fsGroup share it; they see other groups' writes once those reach S3, as a pod
        on another node would."""
        key = f"{volume.record.volume_id}#fsgroup={group}"
        existing = self.volumes.get(key)
        if existing is not None:
            return existing
        parent = volume.record
        own_dir = self.cache_root / volume_key(key)
        cache_dir = own_dir / CACHE_SUBDIR
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = volume.staging_path.parent / f"razorfs-fsgroup-{group}"
        staging.mkdir(mode=0o755, exist_ok=True)
        argv = list(parent.argv)
        argv[2] = str(staging)  # mount URL MOUNTPOINT ...
        _set_flag(argv, "--cache-dir", str(cache_dir))
        _set_flag(argv, "--gid", str(group))
        # Its own name in logs and metrics: two daemons must never export the same series.
        name = argv[argv.index(VOLUME_NAME_FLAG) + 1] if VOLUME_NAME_FLAG in argv else parent.volume_id
        _set_flag(argv, VOLUME_NAME_FLAG, f"{name}#fsgroup={group}")
        credentials = self.store.load_credentials(parent.volume_id)
        if "--ca-bundle" in argv and credentials.ca_bundle:
            bundle = own_dir / CA_BUNDLE_NAME  # a mount pod sees its own directory only
            write_private_file(bundle, credentials.ca_bundle.encode())
            _set_flag(argv, "--ca-bundle", str(bundle))
        record = VolumeRecord(
            volume_id=key,
            staging_path=str(staging),
            cache_dir=str(cache_dir),
            argv=argv,
            capability=parent.capability,
            mount_group=group,
            parent=parent.volume_id,
            razor_volume=parent.razor_volume,
            mount_pod=parent.mount_pod,
        )
        self.store.save_credentials(key, credentials)
        self.store.save(record)
        mount = StagedVolume(record, VolumeState.RECOVERING)
        try:
            await self._start_daemon(mount)
        except BaseException:
            await self.host.abandon(record)
            await mounts.unmount(staging, lazy=True)
            self.store.remove(key)
            raise
        mount.state = VolumeState.MOUNTED
        self.volumes[key] = mount
        log.info("volume %s: a mount for fsGroup %d at %s", parent.volume_id, group, staging)
        return mount

    async def publish(
        self,
        volume_id: str,
        staging_path: Path,
        target: Path,
        read_only: bool,
        mount_group: int | None = None,
        pod: dict[str, str] | None = None,
    ) -> None:
        async with self._lock(volume_id):
            volume = self.volumes.get(volume_id)
            if volume is None:
                raise FailedPrecondition(f"volume {volume_id} is not staged on this node")
            if volume.record.staging_path != str(staging_path):
                raise FailedPrecondition(f"volume {volume_id} is staged at {volume.record.staging_path}")
            if mount_group is not None and mount_group != volume.record.mount_group:
                if volume.state is not VolumeState.MOUNTED:
                    raise Unavailable(f"volume {volume_id} is {volume.state.value}: {volume.last_error}")
                volume = await self._group_mount(volume, mount_group)
            async with self._lock(volume.record.volume_id) if volume.record.parent else contextlib.nullcontext():
                await self._bind_target(volume, target, read_only, pod)

    async def _bind_target(
        self, volume: StagedVolume, target: Path, read_only: bool, pod: dict[str, str] | None
    ) -> None:
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
        self.store.save(volume.record)
        try:
            await mounts.bind(volume.staging_path, target, read_only)
        except BaseException:
            del volume.record.targets[key]
            volume.record.target_pods.pop(key, None)
            self.store.save(volume.record)
            raise

    async def unpublish(self, volume_id: str, target: Path) -> None:
        async with self._lock(volume_id):
            await mounts.unmount(target)
            await mounts.remove_target(target)
            volume = self.volumes.get(volume_id)
            for mount in ([volume] if volume else []) + self._group_mounts(volume_id):
                mount.record.target_pods.pop(str(target), None)
                if mount.record.targets.pop(str(target), None) is None:
                    continue
                self.store.save(mount.record)
                if mount.record.parent and not mount.record.targets:
                    # The last pod of that fsGroup is gone: so is its mount (after a flush).
                    async with self._lock(mount.record.volume_id):
                        await self._shut_down(mount)

    def mount_at(self, volume_id: str, path: str) -> StagedVolume:
        """The mount of `volume_id` whose staging path or target is `path`."""
        for mount in [self.get(volume_id), *self._group_mounts(volume_id)]:
            if path in (mount.record.staging_path, *mount.record.targets):
                return mount
        raise NotFound(f"volume {volume_id} is not mounted at {path}")

    # -- queries and admin operations -----------------------------------------------------------

    def get(self, volume_id: str) -> StagedVolume:
        volume = self.volumes.get(volume_id)
        if volume is None:
            raise NotFound(f"volume {volume_id} is not staged on this node")
        return volume

    async def stats(self, volume_id: str, timeout_s: float = 5.0, mount: StagedVolume | None = None) -> dict[str, Any]:
        volume = mount or self.get(volume_id)
        if volume.state is not VolumeState.MOUNTED:
            raise Unavailable(f"volume {volume_id} is {volume.state.value}")
        return await ControlClient(volume.cache_dir).stats(timeout_s)

    async def flush(self, volume_id: str, timeout_s: float | None) -> int:
        volume = self.get(volume_id)
        if volume.state is not VolumeState.MOUNTED:
            raise Unavailable(f"volume {volume_id} is {volume.state.value}")
        return await ControlClient(volume.cache_dir).flush(timeout_s)

    async def update_credentials(self, volume_id: str, credentials: Credentials) -> int:
        """New keys for a staged volume (its Secret changed): recorded for every later daemon start
        of its mounts and handed to those running now. Returns how many daemons took them."""
        volume = self.get(volume_id)
        argv = volume.record.argv
        if CREDENTIAL_SOURCE_FLAG in argv and argv[argv.index(CREDENTIAL_SOURCE_FLAG) + 1] != "explicit":
            raise FailedPrecondition(f"volume {volume_id} signs with the node's identity: it has no keys to replace")
        credentials.require_complete()
        updated = 0
        async with self._lock(volume_id):
            for mount in [volume, *self._group_mounts(volume_id)]:
                record = mount.record
                self.store.save_credentials(record.volume_id, credentials)
                if credentials.ca_bundle and "--ca-bundle" in record.argv:
                    # Read at the daemon's next start (a running one keeps its TLS setup).
                    bundle = Path(record.argv[record.argv.index("--ca-bundle") + 1])
                    await asyncio.to_thread(write_private_file, bundle, credentials.ca_bundle.encode())
                if mount.state is VolumeState.MOUNTED:
                    await ControlClient(mount.cache_dir).replace_credentials(credentials)
                    updated += 1
        log.info("volume %s: new S3 credentials, %d daemon(s) signing with them", volume_id, updated)
        return updated

    async def warm(self, volume_id: str, paths: list[str]) -> AsyncIterator[dict[str, Any]]:
        volume = self.get(volume_id)
        if volume.state is not VolumeState.MOUNTED:
            raise Unavailable(f"volume {volume_id} is {volume.state.value}")
        async for progress in ControlClient(volume.cache_dir).warm(paths):
            yield progress


def _set_flag(argv: list[str], flag: str, value: str) -> None:
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]


def default_mount_command() -> list[str]:
    """The `razorfs` CLI installed next to our interpreter, else the module."""
    import sys

    beside = Path(sys.executable).with_name("razorfs")
    if beside.exists() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "razorfs.cli"]
