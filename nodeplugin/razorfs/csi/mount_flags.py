"""The mount options a user may set on a StorageClass or PersistentVolume (`mountOptions`, which
reach us as CSI `VolumeCapability.mount.mount_flags`): the one table of the vocabulary, and its
parser. Each option overrides one volume-context key (StorageClass parameter or RazorVolume
setting); an unknown, malformed or conflicting option is refused with INVALID_ARGUMENT naming it,
never dropped."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from razorfs.csi.errors import InvalidArgument, quoted
from razorfs.volume_spec import CACHE_MODES, ContextKey, parse_duration, parse_mode, parse_size

ID_MAX = 4294967294  # the largest uid/gid Linux accepts (-1 means "unchanged")


def _parse_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(ID_MAX)) or int(text) > ID_MAX:
        raise ValueError(f"expected a user or group ID from 0 to {ID_MAX}")
    return int(text)


def _parse_cache_mode(text: str) -> str:
    if text not in CACHE_MODES:
        raise ValueError(f"expected one of {', '.join(CACHE_MODES)}")
    return text


@dataclass(frozen=True)
class MountFlag:
    name: str
    context_key: str
    meaning: str
    # Valued options are checked by `parse`; a bare switch sets `switch_value` instead.
    parse: Callable[[str], object] | None = None
    switch_value: str = ""
    example: str = ""

    @property
    def usage(self) -> str:
        return f"{self.name}={self.example}" if self.parse is not None else self.name


MOUNT_FLAGS: tuple[MountFlag, ...] = (
    MountFlag("ro", ContextKey.READ_ONLY, "read-only volume: every write fails with EROFS", switch_value="true"),
    MountFlag("rw", ContextKey.READ_ONLY, "read-write volume (the default); conflicts with ro", switch_value="false"),
    MountFlag("uid", ContextKey.UID, "owner of files and directories without uid metadata", _parse_id, example="1000"),
    MountFlag("gid", ContextKey.GID, "group of files and directories without gid metadata", _parse_id, example="1000"),
    MountFlag("file-mode", ContextKey.FILE_MODE, "mode of files without mode metadata", parse_mode, example="0644"),
    MountFlag("dir-mode", ContextKey.DIR_MODE, "mode of directories without mode metadata", parse_mode, example="0755"),
    MountFlag(
        "metadata-ttl",
        ContextKey.METADATA_TTL,
        "how long listings and attributes are trusted before open() revalidates against S3",
        parse_duration,
        example="1s",
    ),
    MountFlag(
        "cache-mode",
        ContextKey.CACHE_MODE,
        "writeback (close() returns once on local disk), writethrough (close() waits for S3) or readonly",
        _parse_cache_mode,
        example="writethrough",
    ),
    MountFlag("cache-size", ContextKey.CACHE_SIZE, "byte limit of the node-local cache", parse_size, example="20Gi"),
)
_BY_NAME = {flag.name: flag for flag in MOUNT_FLAGS}
SUPPORTED = ", ".join(flag.usage for flag in MOUNT_FLAGS)


@dataclass(frozen=True)
class MountFlagOverrides:
    """What the mount options set, as volume-context keys and values."""

    context: dict[str, str]

    @property
    def read_only(self) -> bool:
        return self.context.get(ContextKey.READ_ONLY) == "true"

    def applied_to(self, context: Mapping[str, str]) -> dict[str, str]:
        """The volume context with the options' values in place of the context's own: a
        StorageClass's or PersistentVolume's mountOptions are the later, more specific word."""
        return {**context, **self.context}


def _split(flags: Iterable[str]) -> list[str]:
    # kubelet passes each mountOptions entry as one flag; an entry like "ro,uid=1000" is split
    # the way mount(8) would read it.
    return [part.strip() for flag in flags for part in flag.split(",") if part.strip()]


def _value_of(raw: str) -> tuple[MountFlag, str]:
    name, has_value, value = raw.partition("=")
    flag = _BY_NAME.get(name.strip())
    if flag is None:
        raise InvalidArgument(f"mount option {quoted(raw)} is not supported; RazorFS supports: {SUPPORTED}")
    if flag.parse is None:
        if has_value:
            raise InvalidArgument(f"mount option {quoted(raw)} takes no value: write {flag.name}")
        return flag, flag.switch_value
    value = value.strip()
    if not value:
        raise InvalidArgument(f"mount option {quoted(raw)} needs a value, e.g. {flag.usage}")
    try:
        flag.parse(value)
    except ValueError as exc:
        raise InvalidArgument(f"mount option {quoted(raw)}: {str(exc)[:160]}") from None
    return flag, value


def parse_mount_flags(flags: Iterable[str]) -> MountFlagOverrides:
    """Raises InvalidArgument naming the first unknown, malformed or conflicting option."""
    context: dict[str, str] = {}
    source: dict[str, str] = {}
    for raw in _split(flags):
        flag, value = _value_of(raw)
        key = flag.context_key
        if key in context and context[key] != value:
            raise InvalidArgument(f"mount options {quoted(source[key])} and {quoted(raw)} conflict: keep one of them")
        context[key], source[key] = value, raw
    mode, read_only = context.get(ContextKey.CACHE_MODE), context.get(ContextKey.READ_ONLY)
    writable_mode = mode in ("writeback", "writethrough")
    if (read_only == "true" and writable_mode) or (read_only == "false" and mode == "readonly"):
        first, second = source[ContextKey.READ_ONLY], source[ContextKey.CACHE_MODE]
        raise InvalidArgument(f"mount options {quoted(first)} and {quoted(second)} conflict: keep one of them")
    return MountFlagOverrides(context)
