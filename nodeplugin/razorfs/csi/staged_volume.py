"""The mounts this node plugin keeps, in memory: each one's record (as in the state dir) and its
state (Mounted, Recovering, Failed, Unmounting), by mount id, with one lock per mount id.

A staged volume is one mount; a pod whose fsGroup differs from the stage's gets a mount of its own
(`<volume id>#fsgroup=<gid>`, `record.parent` naming the staged volume). Every operation on a mount
holds its lock; the mounts of other fsGroups are locked after their staged volume, never before."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from pathlib import Path

from razorfs.csi.errors import NotFound
from razorfs.csi.state_store import VolumeRecord

# After a failed recovery the next try waits this long at first, doubling up to the maximum.
RECOVERY_BACKOFF_FIRST_S = 0.5


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
    recovery_backoff_s: float = RECOVERY_BACKOFF_FIRST_S

    @property
    def staging_path(self) -> Path:
        return Path(self.record.staging_path)

    @property
    def cache_dir(self) -> Path:
        return Path(self.record.cache_dir)


class StagedVolumes:
    """Every mount by id (staged volumes and the mounts made for other fsGroups), and their locks."""

    def __init__(self) -> None:
        self._by_id: dict[str, StagedVolume] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, volume_id: str) -> asyncio.Lock:
        return self._locks.setdefault(volume_id, asyncio.Lock())

    def add(self, volume: StagedVolume) -> None:
        self._by_id[volume.record.volume_id] = volume

    def remove(self, volume_id: str) -> None:
        del self._by_id[volume_id]

    def find(self, volume_id: str) -> StagedVolume | None:
        return self._by_id.get(volume_id)

    def get(self, volume_id: str) -> StagedVolume:
        volume = self._by_id.get(volume_id)
        if volume is None:
            raise NotFound(f"volume {volume_id} is not staged on this node")
        return volume

    def all(self) -> list[StagedVolume]:
        """Every mount, the fsGroup mounts included."""
        return list(self._by_id.values())

    def ids(self) -> list[str]:
        return list(self._by_id)

    def staged(self) -> list[StagedVolume]:
        """The staged volumes (without the extra mounts made for other fsGroups)."""
        return [v for v in self._by_id.values() if not v.record.parent]

    def group_mounts(self, volume_id: str) -> list[StagedVolume]:
        """The mounts made for other fsGroups of the staged volume `volume_id`."""
        return [v for v in self._by_id.values() if v.record.parent == volume_id]

    def mount_at(self, volume_id: str, path: str) -> StagedVolume:
        """The mount of `volume_id` whose staging path or target is `path`."""
        for mount in [self.get(volume_id), *self.group_mounts(volume_id)]:
            if path in (mount.record.staging_path, *mount.record.targets):
                return mount
        raise NotFound(f"volume {volume_id} is not mounted at {path}")
