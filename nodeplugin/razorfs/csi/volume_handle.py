"""The volume ID of a dynamically provisioned volume: everything DeleteVolume needs to find the
objects again (DeleteVolume gets only the ID and the provisioner secrets, no parameters).

Form: `rz1:<endpoint>:<region>:<p|v>:<bucket>:<prefix>`, each field percent-encoded, so the ID
holds no `/` and splits unambiguously on `:`. The node never parses it: it mounts from the
volume context. Statically provisioned volumes (the operator's PVs) may use any valid ID."""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass

_VERSION = "rz1"
# Per-volume prefixes stay short enough for a readable key even for 128-character CSI names.
PREFIX_NAME_MAX = 63
RECORD_SUFFIX = ".razorfs-volume.json"


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


@dataclass(frozen=True)
class VolumeHandle:
    endpoint: str
    region: str
    force_path_style: bool
    bucket: str
    prefix: str  # without trailing "/"

    @property
    def volume_id(self) -> str:
        style = "p" if self.force_path_style else "v"
        fields = [_VERSION, _q(self.endpoint), _q(self.region), style, _q(self.bucket), _q(self.prefix)]
        return ":".join(fields)

    @property
    def key_prefix(self) -> str:
        """Every object of the volume has a key starting with this (ends with "/")."""
        return self.prefix + "/"

    @property
    def marker_key(self) -> str:
        """The zero-byte directory marker of the volume root (so S3 tools show the volume)."""
        return self.key_prefix

    @property
    def record_key(self) -> str:
        """A small JSON object beside the volume (not inside it, so the volume's files are only
        the user's) recording its CSI name and capacity. Not user metadata on the marker: some
        servers (SeaweedFS) keep `dir/` keys as directories and drop their metadata."""
        return self.prefix + RECORD_SUFFIX


def parse_volume_id(volume_id: str) -> VolumeHandle | None:
    """The handle, or None when the ID is not one of ours (a static or foreign ID)."""
    fields = volume_id.split(":")
    if len(fields) != 6 or fields[0] != _VERSION or fields[3] not in ("p", "v"):
        return None
    endpoint, region, bucket, prefix = (urllib.parse.unquote(f) for f in (fields[1], fields[2], fields[4], fields[5]))
    if not endpoint or not bucket or not prefix or any(s in ("", ".", "..") for s in prefix.split("/")):
        return None
    return VolumeHandle(endpoint, region, fields[3] == "p", bucket, prefix)


def short_segment(name: str) -> str:
    """`name` as one key segment: no "/", and names over 63 characters cut to 40 plus a hash, so
    128-character CSI names and 253-character claim names still give readable keys."""
    leaf = name.replace("/", "-")
    if len(leaf) > PREFIX_NAME_MAX or leaf in (".", ".."):
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        leaf = f"{leaf[:40].strip('.')}-{digest}"
    return leaf
