"""File attributes <-> object user metadata, with exactly the header names s3fs writes
(`mode` as decimal st_mode including the file-type bits, `uid`, `gid`, `mtime` in Unix seconds),
so a bucket written by RazorFS reads correctly in s3fs and rclone and the other way round.
rclone's fractional `mtime` is read too; objects without headers get the mount's defaults."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass

MODE_HEADER = "mode"
UID_HEADER = "uid"
GID_HEADER = "gid"
MTIME_HEADER = "mtime"


@dataclass(frozen=True)
class AttrDefaults:
    """What an object without our headers looks like (the mount options)."""

    uid: int = 0
    gid: int = 0
    file_mode: int = 0o644
    dir_mode: int = 0o755


@dataclass(frozen=True)
class ObjectAttrs:
    mode: int  # full st_mode, file-type bits included
    uid: int
    gid: int
    mtime: float  # Unix seconds

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def stored_equal(self, other: ObjectAttrs) -> bool:
        """Equal as object metadata keeps them: mtime in whole seconds."""
        return (self.mode, self.uid, self.gid, int(self.mtime)) == (other.mode, other.uid, other.gid, int(other.mtime))

    def replace(self, **changes: float) -> ObjectAttrs:
        values = {"mode": self.mode, "uid": self.uid, "gid": self.gid, "mtime": self.mtime}
        values.update(changes)
        return ObjectAttrs(int(values["mode"]), int(values["uid"]), int(values["gid"]), float(values["mtime"]))


def _int_header(metadata: Mapping[str, str], name: str) -> int | None:
    try:
        return int(metadata[name].strip())
    except (KeyError, ValueError):
        return None


def _mtime_header(metadata: Mapping[str, str]) -> float | None:
    # s3fs writes integer seconds; rclone writes e.g. "1700000000.123456789".
    try:
        return float(metadata[MTIME_HEADER].strip())
    except (KeyError, ValueError):
        return None


def attrs_from_metadata(
    metadata: Mapping[str, str],
    last_modified: float,
    defaults: AttrDefaults,
    directory: bool = False,
) -> ObjectAttrs:
    """Attributes of an object (or a directory marker when `directory`); missing or garbled
    headers fall back to the mount's defaults and the object's LastModified."""
    lowered = {name.lower(): value for name, value in metadata.items()}
    mode = _int_header(lowered, MODE_HEADER)
    if directory:
        perm = stat.S_IMODE(mode) if mode is not None else defaults.dir_mode
        mode = stat.S_IFDIR | perm
    elif mode is None or stat.S_IFMT(mode) == 0:
        perm = stat.S_IMODE(mode) if mode is not None else defaults.file_mode
        mode = stat.S_IFREG | perm
    elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        # A marker for a device or fifo (s3fs can store those): shown as a regular file.
        mode = stat.S_IFREG | stat.S_IMODE(mode)
    uid = _int_header(lowered, UID_HEADER)
    gid = _int_header(lowered, GID_HEADER)
    mtime = _mtime_header(lowered)
    return ObjectAttrs(
        mode=mode,
        uid=defaults.uid if uid is None else uid,
        gid=defaults.gid if gid is None else gid,
        mtime=last_modified if mtime is None else mtime,
    )


def metadata_from_attrs(attrs: ObjectAttrs) -> dict[str, str]:
    """User metadata for an upload: s3fs writes integer seconds, so do we."""
    return {
        MODE_HEADER: str(attrs.mode),
        UID_HEADER: str(attrs.uid),
        GID_HEADER: str(attrs.gid),
        MTIME_HEADER: str(int(attrs.mtime)),
    }
