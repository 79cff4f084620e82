"""File attributes <-> object user metadata, with exactly the header names s3fs writes
(`mode` as decimal st_mode including the file-type bits, `uid`, `gid`, and `mtime`, `atime`,
`ctime` in Unix seconds), so a bucket written by RazorFS reads correctly in s3fs and rclone and
the other way round. rclone's fractional `mtime` is read too; objects without headers get the
mount's defaults, and a missing `atime` or `ctime` reads as the mtime (as s3fs does). Device
numbers go in `rdev` (the header s3fs-c used; s3fs 1.90 keeps none and shows devices as 0:0)."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass

MODE_HEADER = "mode"
UID_HEADER = "uid"
GID_HEADER = "gid"
MTIME_HEADER = "mtime"
ATIME_HEADER = "atime"
CTIME_HEADER = "ctime"
RDEV_HEADER = "rdev"

# File types stored as empty objects with the type in `mode` (s3fs's mknod).
SPECIAL_FILE_TYPES = (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK)


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
    # None (objects written without the header) reads as the mtime; set to it at construction,
    # so two records of the same object compare equal however they were made.
    atime: float | None = None
    ctime: float | None = None
    rdev: int = 0  # device number of a character or block device node

    def __post_init__(self) -> None:
        if self.atime is None:
            object.__setattr__(self, "atime", self.mtime)
        if self.ctime is None:
            object.__setattr__(self, "ctime", self.mtime)

    @property
    def access_time(self) -> float:
        return self.mtime if self.atime is None else self.atime

    @property
    def change_time(self) -> float:
        return self.mtime if self.ctime is None else self.ctime

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_special(self) -> bool:
        """A FIFO, socket or device node: an empty object whose type is in its mode."""
        return stat.S_IFMT(self.mode) in SPECIAL_FILE_TYPES

    def stored_equal(self, other: ObjectAttrs) -> bool:
        """Equal as object metadata keeps them: times in whole seconds."""
        return self._stored() == other._stored()

    def _stored(self) -> tuple[int, ...]:
        times = (int(self.mtime), int(self.access_time), int(self.change_time))
        return (self.mode, self.uid, self.gid, self.rdev, *times)

    def replace(self, **changes: float) -> ObjectAttrs:
        values: dict[str, float] = {
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "mtime": self.mtime,
            "atime": self.access_time,
            "ctime": self.change_time,
            "rdev": self.rdev,
        }
        values.update(changes)
        return ObjectAttrs(
            int(values["mode"]),
            int(values["uid"]),
            int(values["gid"]),
            float(values["mtime"]),
            float(values["atime"]),
            float(values["ctime"]),
            int(values["rdev"]),
        )

    def changed(self, now: float, **changes: float) -> ObjectAttrs:
        """These attributes after a change of the inode at `now` (the ctime follows)."""
        return self.replace(ctime=now, **changes)


def _int_header(metadata: Mapping[str, str], name: str) -> int | None:
    try:
        return int(metadata[name].strip())
    except (KeyError, ValueError):
        return None


def _time_header(metadata: Mapping[str, str], name: str) -> float | None:
    # s3fs writes integer seconds; rclone writes e.g. "1700000000.123456789".
    try:
        return float(metadata[name].strip())
    except (KeyError, ValueError):
        return None


def has_attr_headers(metadata: Mapping[str, str]) -> bool:
    """Whether an object carries our (s3fs's) attributes at all, not only the mount's defaults."""
    return any(name.lower() == MODE_HEADER for name in metadata)


def _mode_of(mode: int | None, defaults: AttrDefaults, directory: bool) -> int:
    if directory:
        # s3fs 1.90 sometimes writes a directory marker's mode without S_IFDIR (after a chown).
        return stat.S_IFDIR | (stat.S_IMODE(mode) if mode is not None else defaults.dir_mode)
    if mode is None or stat.S_IFMT(mode) == 0:
        return stat.S_IFREG | (stat.S_IMODE(mode) if mode is not None else defaults.file_mode)
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_IFMT(mode) in SPECIAL_FILE_TYPES:
        return mode
    # A directory type on a key without the trailing slash (or garbage): shown as a regular file.
    return stat.S_IFREG | stat.S_IMODE(mode)


def attrs_from_metadata(
    metadata: Mapping[str, str],
    last_modified: float,
    defaults: AttrDefaults,
    directory: bool = False,
) -> ObjectAttrs:
    """Attributes of an object (or a directory marker when `directory`); missing or garbled
    headers fall back to the mount's defaults and the object's LastModified."""
    lowered = {name.lower(): value for name, value in metadata.items()}
    mode = _mode_of(_int_header(lowered, MODE_HEADER), defaults, directory)
    uid = _int_header(lowered, UID_HEADER)
    gid = _int_header(lowered, GID_HEADER)
    mtime = _time_header(lowered, MTIME_HEADER)
    mtime = last_modified if mtime is None else mtime
    rdev = _int_header(lowered, RDEV_HEADER) if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else None
    return ObjectAttrs(
        mode=mode,
        uid=defaults.uid if uid is None else uid,
        gid=defaults.gid if gid is None else gid,
        mtime=mtime,
        atime=_time_header(lowered, ATIME_HEADER),
        ctime=_time_header(lowered, CTIME_HEADER),
        rdev=rdev or 0,
    )


def metadata_from_attrs(attrs: ObjectAttrs) -> dict[str, str]:
    """User metadata for an upload: s3fs writes integer seconds, so do we."""
    metadata = {
        MODE_HEADER: str(attrs.mode),
        UID_HEADER: str(attrs.uid),
        GID_HEADER: str(attrs.gid),
        MTIME_HEADER: str(int(attrs.mtime)),
        ATIME_HEADER: str(int(attrs.access_time)),
        CTIME_HEADER: str(int(attrs.change_time)),
    }
    if attrs.rdev:
        metadata[RDEV_HEADER] = str(attrs.rdev)
    return metadata
