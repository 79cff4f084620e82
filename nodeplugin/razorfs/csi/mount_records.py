"""How a mount's record (state_store.VolumeRecord) and its own directory are made: for a stage
from the CSI request, for another fsGroup or (`authentication: pod`) another ServiceAccount from
the staged volume's record. All go through `make_mount_dir`, so every mount's directory
(`<cache-root>/<mount key>/`: its cache, CA bundle and ServiceAccount token, all a mount pod sees
of the node) is laid out the same way.

Also the daemon flags the plugin itself reads or fills in (credential source, volume name) on a
record's `razorfs mount` arguments."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from razorfs.csi.daemon_hosts import CA_BUNDLE_NAME, CACHE_SUBDIR
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.private_files import write_private_file
from razorfs.csi.state_store import VolumeRecord, volume_key
from razorfs.mount.options import CREDENTIAL_SOURCE_FLAG, ROLE_SESSION_NAME_FLAG, TOKEN_FILE_FLAG

VOLUME_NAME_FLAG = "--volume-name"
CA_BUNDLE_FLAG = "--ca-bundle"
# A ServiceAccount mount's token, in its own directory (a mount pod sees it at /razorfs/<name>).
TOKEN_FILE_NAME = "serviceaccount-token"


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


@dataclass(frozen=True)
class MountDir:
    cache_dir: Path
    ca_bundle: Path | None  # None: the mount has no CA bundle of its own


def make_mount_dir(cache_root: Path, mount_id: str, ca_bundle_pem: str) -> MountDir:
    """Creates the mount's own directory with its cache dir, and writes its CA bundle (if any)."""
    own_dir = cache_root / volume_key(mount_id)
    cache_dir = own_dir / CACHE_SUBDIR
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not ca_bundle_pem:
        return MountDir(cache_dir, None)
    bundle = own_dir / CA_BUNDLE_NAME  # a mount pod sees its own directory only
    write_private_file(bundle, ca_bundle_pem.encode())
    return MountDir(cache_dir, bundle)


def stage_record(request: StageRequest, mount_dir: MountDir, per_service_account: bool = False) -> VolumeRecord:
    argv = request.settings.mount_argv(
        [],
        request.staging_path,
        mount_dir.cache_dir,
        read_only=request.read_only,
        mount_group=request.mount_group,
        ca_bundle=mount_dir.ca_bundle,
    )
    return VolumeRecord(
        volume_id=request.volume_id,
        staging_path=str(request.staging_path),
        cache_dir=str(mount_dir.cache_dir),
        argv=argv,
        capability=request.capability,
        mount_group=request.mount_group,
        razor_volume=request.razor_volume,
        mount_pod=request.mount_pod,
        per_service_account=per_service_account,
    )


def group_mount_id(volume_id: str, group: int) -> str:
    return f"{volume_id}#fsgroup={group}"


def group_staging_path(staging_path: Path, group: int) -> Path:
    """Beside the kubelet's staging path (`globalmount`), in the directory kubelet made for it."""
    return staging_path.parent / f"razorfs-fsgroup-{group}"


def group_record(parent: VolumeRecord, group: int, staging: Path, mount_dir: MountDir) -> VolumeRecord:
    """The record of the mount showing `parent`'s volume with files of `group`: the parent's
    arguments with its own mount point, cache, CA bundle, group and name."""
    return _child_record(parent, group_mount_id(parent.volume_id, group), group, staging, mount_dir)


def service_account_mount_id(volume_id: str, service_account: str, group: int | None) -> str:
    """`<volume id>#sa=<namespace>/<name>[#fsgroup=<gid>]`: one mount per ServiceAccount (and fsGroup)."""
    mount_id = f"{volume_id}#sa={service_account}"
    return mount_id if group is None else group_mount_id(mount_id, group)


def service_account_staging_path(staging_path: Path, mount_id: str) -> Path:
    """Beside the kubelet's staging path, named by a digest (ServiceAccount names are long)."""
    return staging_path.parent / f"razorfs-sa-{hashlib.sha256(mount_id.encode()).hexdigest()[:16]}"


def role_session_name(service_account: str) -> str:
    """"<namespace>.<name>", a role session name STS accepts (2 to 64 letters, digits or + = , . @ _ -)."""
    return service_account.replace("/", ".")[:64]


def service_account_record(
    parent: VolumeRecord, mount_id: str, service_account: str, group: int | None, staging: Path, mount_dir: MountDir
) -> VolumeRecord:
    """The record of the mount serving `parent`'s volume to the pods of one ServiceAccount: the
    parent's arguments (role, STS endpoint) with its own mount point, cache, name, token file and
    role session name, and the pods' fsGroup when it differs from the stage's."""
    record = _child_record(parent, mount_id, group, staging, mount_dir)
    set_flag(record.argv, TOKEN_FILE_FLAG, str(mount_dir.cache_dir.parent / TOKEN_FILE_NAME))
    set_flag(record.argv, ROLE_SESSION_NAME_FLAG, role_session_name(service_account))
    return record


def _child_record(
    parent: VolumeRecord, mount_id: str, group: int | None, staging: Path, mount_dir: MountDir
) -> VolumeRecord:
    argv = list(parent.argv)
    argv[2] = str(staging)  # mount URL MOUNTPOINT ...
    set_flag(argv, "--cache-dir", str(mount_dir.cache_dir))
    if group is not None:
        set_flag(argv, "--gid", str(group))
    # Its own name in logs and metrics: two daemons must never export the same series.
    name = flag_value(argv, VOLUME_NAME_FLAG)
    if name is None:
        name = parent.volume_id
    set_flag(argv, VOLUME_NAME_FLAG, name + mount_id[len(parent.volume_id) :])
    if mount_dir.ca_bundle is not None:
        set_flag(argv, CA_BUNDLE_FLAG, str(mount_dir.ca_bundle))
    return VolumeRecord(
        volume_id=mount_id,
        staging_path=str(staging),
        cache_dir=str(mount_dir.cache_dir),
        argv=argv,
        capability=parent.capability,
        mount_group=group if group is not None else parent.mount_group,
        parent=parent.volume_id,
        razor_volume=parent.razor_volume,
        mount_pod=parent.mount_pod,
    )


def complete_daemon_flags(record: VolumeRecord) -> None:
    """Adds the flags a record written by an older plugin lacks."""
    if CREDENTIAL_SOURCE_FLAG not in record.argv:
        # A record from before credential sources: its volume signs with its Secret only.
        record.argv += [CREDENTIAL_SOURCE_FLAG, "explicit"]
    if VOLUME_NAME_FLAG not in record.argv:
        # The daemon's name in its log lines and metrics (never a secret: the CSI volume id).
        record.argv += [VOLUME_NAME_FLAG, record.volume_id]


def credential_source(argv: list[str]) -> str | None:
    """The record's credential source, None on a record from before credential sources."""
    return flag_value(argv, CREDENTIAL_SOURCE_FLAG)


def flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def set_flag(argv: list[str], flag: str, value: str) -> None:
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]
