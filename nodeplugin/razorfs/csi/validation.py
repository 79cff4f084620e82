"""Checks on what kubelet, external-provisioner or csi-sanity send us: volume IDs, kubelet paths
and volume capabilities. Each check raises `InvalidArgument` with a message naming the field."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from razorfs.csi import mounts
from razorfs.csi.errors import InvalidArgument
from razorfs.csi.mount_flags import MountFlagOverrides, parse_mount_flags
from razorfs_wire.csi.v1 import csi_pb2

# Generous for volume IDs carrying an endpoint, a bucket and a prefix; still bounded so a
# volume ID can never blow up a log line or a file name.
VOLUME_ID_MAX_BYTES = 1024
PATH_MAX_BYTES = 4096
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

AccessMode = csi_pb2.VolumeCapability.AccessMode
READ_ONLY_ACCESS_MODES = frozenset({AccessMode.SINGLE_NODE_READER_ONLY, AccessMode.MULTI_NODE_READER_ONLY})
SUPPORTED_ACCESS_MODES = frozenset(
    {
        AccessMode.SINGLE_NODE_WRITER,
        AccessMode.SINGLE_NODE_READER_ONLY,
        AccessMode.MULTI_NODE_READER_ONLY,
        AccessMode.MULTI_NODE_SINGLE_WRITER,
        AccessMode.MULTI_NODE_MULTI_WRITER,
        AccessMode.SINGLE_NODE_SINGLE_WRITER,
        AccessMode.SINGLE_NODE_MULTI_WRITER,
    }
)
# A FUSE filesystem has no block device and no mkfs: "" (unset) or our own names only.
SUPPORTED_FS_TYPES = frozenset({"", "razorfs", "fuse", "fuse.razorfs"})


def check_volume_id(volume_id: str) -> str:
    """A volume ID is opaque to the node, but it names state on disk and appears in logs: no
    control characters, no absolute path, no `.`/`..` segment, bounded length."""
    if not volume_id:
        raise InvalidArgument("volume_id is required")
    if len(volume_id.encode()) > VOLUME_ID_MAX_BYTES:
        raise InvalidArgument(f"volume_id is longer than {VOLUME_ID_MAX_BYTES} bytes")
    if _CONTROL_CHARS.search(volume_id):
        raise InvalidArgument("volume_id contains control characters")
    if volume_id.startswith("/") or "\\" in volume_id:
        raise InvalidArgument(f"volume_id {volume_id!r} looks like a path")
    if any(segment in (".", "..") for segment in volume_id.split("/")):
        raise InvalidArgument(f"volume_id {volume_id!r} contains a path traversal segment")
    return volume_id


def check_kubelet_path(field: str, path: str, kubelet_dir: Path, mounted: frozenset[str] | None = None) -> Path:
    """An absolute, normalized path strictly inside `kubelet_dir` in which no component below
    `kubelet_dir` is a symlink (a bind mount or mkdir would follow it, wherever it leads).
    `mounted`: the mount table's paths (read when not given); a mountpoint is never stat'ed."""
    if not path:
        raise InvalidArgument(f"{field} is required")
    if len(path.encode()) > PATH_MAX_BYTES or _CONTROL_CHARS.search(path):
        raise InvalidArgument(f"{field} is not a valid path")
    if not os.path.isabs(path):
        raise InvalidArgument(f"{field} {path!r} is not absolute")
    if any(part == ".." for part in path.split("/")):
        raise InvalidArgument(f"{field} {path!r} contains '..'")
    candidate = Path(os.path.normpath(path))
    root = Path(os.path.realpath(kubelet_dir))
    # The leaf may be a (dead) mountpoint we must not stat; resolve its parent only.
    resolved = Path(os.path.realpath(candidate.parent)) / candidate.name
    if root not in resolved.parents:
        raise InvalidArgument(f"{field} {path!r} is outside the kubelet directory {kubelet_dir}")
    link = _first_symlink(candidate, Path(os.path.normpath(kubelet_dir)), mounted)
    if link is not None:
        raise InvalidArgument(f"{field} {path!r}: {link} is a symlink")
    return candidate


def _first_symlink(path: Path, kubelet_dir: Path, mounted: frozenset[str] | None) -> Path | None:
    """The first component of `path` below `kubelet_dir` that is a symlink, or None. Stops at the
    first that does not exist; a mountpoint (the leaf of a published or staged volume, maybe a
    dead FUSE mount) is a mount, not a link, and is not stat'ed."""
    if mounted is None:
        mounted = mounts.mounted_paths()
    if kubelet_dir not in path.parents:
        return None  # reached through a symlinked kubelet dir (an admin's choice): checked above
    current = kubelet_dir
    for part in path.relative_to(kubelet_dir).parts:
        current = current / part
        if str(current) in mounted:
            continue
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except FileNotFoundError:
            return None
        except OSError:
            continue  # e.g. ENOTCONN under a dead mount: not a link
    return None



def check_capability(capability: csi_pb2.VolumeCapability, field: str = "volume_capability") -> MountFlagOverrides:
    """Mount access with a supported access mode and supported mount options (what they set is
    returned); block access is refused."""
    if not capability.HasField("access_mode"):
        raise InvalidArgument(f"{field}.access_mode is required")
    if capability.access_mode.mode not in SUPPORTED_ACCESS_MODES:
        raise InvalidArgument(f"{field}.access_mode {capability.access_mode.mode} is not supported")
    access_type = capability.WhichOneof("access_type")
    if access_type == "block":
        raise InvalidArgument(f"{field}: block access is not supported, RazorFS is a filesystem")
    if access_type != "mount":
        raise InvalidArgument(f"{field}: mount access type is required")
    if capability.mount.fs_type not in SUPPORTED_FS_TYPES:
        raise InvalidArgument(f"{field}.mount.fs_type {capability.mount.fs_type!r} is not supported")
    return parse_mount_flags(capability.mount.mount_flags)


def check_capabilities(capabilities: Sequence[csi_pb2.VolumeCapability]) -> None:
    if not capabilities:
        raise InvalidArgument("volume_capabilities is required")
    for index, capability in enumerate(capabilities):
        check_capability(capability, f"volume_capabilities[{index}]")


def capability_unsupported_reason(capability: csi_pb2.VolumeCapability) -> str | None:
    """Why a capability cannot be served, or None (for ValidateVolumeCapabilities, which answers
    an unsupported capability with an unconfirmed reply rather than an error)."""
    try:
        check_capability(capability)
    except InvalidArgument as exc:
        return str(exc)
    return None


def is_read_only_mode(capability: csi_pb2.VolumeCapability) -> bool:
    return capability.access_mode.mode in READ_ONLY_ACCESS_MODES
