"""The plugin's state directory: one record per staged volume, so a restarted `razorfs-node`
re-adopts the running mount daemons and knows which targets each volume is bound to.

Layout: `<state-dir>/volumes/<key>/volume.json` (no secrets) and `credentials.json` (mode 0600,
the stage secrets a dead daemon must be restarted with). Writes are atomic (temp file, fsync,
rename), so a SIGKILL leaves either the old or the new record."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from razorfs.csi.mount_settings import Credentials

_RECORD = "volume.json"
_CREDENTIALS = "credentials.json"


def volume_key(volume_id: str) -> str:
    """A file-name-safe key for a volume ID (IDs may contain `/` and `:`)."""
    return "v-" + hashlib.sha256(volume_id.encode()).hexdigest()[:32]


@dataclass
class DaemonIdentity:
    """A process is "our daemon" only if both its pid and its start time match, so a recycled
    pid is never mistaken for a live daemon."""

    pid: int
    start_ticks: int


@dataclass
class VolumeRecord:
    volume_id: str
    staging_path: str
    cache_dir: str
    argv: list[str]  # `razorfs` arguments (from "mount" on), without the command itself
    # target path -> read-only
    targets: dict[str, bool] = field(default_factory=dict)
    daemon: DaemonIdentity | None = None
    capability: str = ""  # serialized VolumeCapability, to answer repeated stage calls consistently
    restarts: int = 0
    mount_group: int | None = None  # the group files show (a pod's fsGroup, VOLUME_MOUNT_GROUP)
    # A mount for pods with another fsGroup than the stage's: the id of the staged volume it serves.
    parent: str = ""
    razor_volume: str = ""  # "NAMESPACE/NAME" of the RazorVolume, when the volume context names it
    mount_pod: str = ""  # the volume's own mount pod settings (JSON), over the plugin's template
    # target path -> the workload pod using it {"namespace", "name", "uid"} (told what happens)
    target_pods: dict[str, dict[str, str]] = field(default_factory=dict)
    # The stage of an `authentication: pod` volume: no daemon of its own (there is no token before
    # a pod comes); each ServiceAccount publishing it gets a mount whose `parent` names this one.
    per_service_account: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeRecord:
        daemon = data.get("daemon")
        return cls(
            volume_id=data["volume_id"],
            staging_path=data["staging_path"],
            cache_dir=data["cache_dir"],
            argv=list(data["argv"]),
            targets={str(k): bool(v) for k, v in data.get("targets", {}).items()},
            daemon=DaemonIdentity(**daemon) if daemon else None,
            capability=data.get("capability", ""),
            restarts=int(data.get("restarts", 0)),
            mount_group=data.get("mount_group"),
            parent=str(data.get("parent", "")),
            razor_volume=str(data.get("razor_volume", "")),
            mount_pod=str(data.get("mount_pod", "")),
            target_pods={str(k): dict(v) for k, v in data.get("target_pods", {}).items()},
            per_service_account=bool(data.get("per_service_account", False)),
        )


def _write_atomically(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    def __init__(self, state_dir: Path):
        self.root = state_dir / "volumes"
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(state_dir, 0o700)  # a state dir made by an older version: tightened once

    def volume_dir(self, volume_id: str) -> Path:
        return self.root / volume_key(volume_id)

    def save(self, record: VolumeRecord) -> None:
        directory = self.volume_dir(record.volume_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        _write_atomically(directory / _RECORD, json.dumps(asdict(record), indent=1), 0o600)

    def save_credentials(self, volume_id: str, credentials: Credentials) -> None:
        directory = self.volume_dir(volume_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        _write_atomically(directory / _CREDENTIALS, json.dumps(credentials.to_secrets()), 0o600)

    def load_credentials(self, volume_id: str) -> Credentials:
        try:
            data = json.loads((self.volume_dir(volume_id) / _CREDENTIALS).read_text())
        except FileNotFoundError:
            return Credentials()
        return Credentials.from_secrets(data)

    def load_all(self) -> list[VolumeRecord]:
        records = []
        for directory in sorted(self.root.iterdir()):
            path = directory / _RECORD
            if path.is_file():
                records.append(VolumeRecord.from_json(json.loads(path.read_text())))
        return records

    def remove(self, volume_id: str) -> None:
        shutil.rmtree(self.volume_dir(volume_id), ignore_errors=True)
