"""`CachedFile`: the local state of one file: its sparse cache file, which byte ranges of it are
present and which were written since the last upload, the S3 object its clean bytes come from
(`base_*`), its attributes, and version counters that tell dirty from clean."""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from razorfs.cache.journal import DirtyRecord
from razorfs.cache.range_map import RangeMap
from razorfs.store.object_attrs import ObjectAttrs


@dataclass(eq=False)
class CachedFile:
    file_id: int
    path: str  # relative to the volume root, no leading "/"
    data_path: Path
    size: int
    attrs: ObjectAttrs
    # The object the file's unwritten bytes [0, base_size) come from; None for a new file.
    base_key: str | None = None
    base_etag: str | None = None
    base_size: int = 0
    present: RangeMap = field(default_factory=RangeMap)
    written: RangeMap = field(default_factory=RangeMap)
    # Every content or attribute change bumps `version`; the file is dirty while the version in S3
    # lags it. `journaled_version` is the latest version close()/fsync() made durable locally.
    version: int = 0
    journaled_version: int = 0
    uploaded_version: int = 0
    # Smallest size since the last upload snapshot: bytes past it no longer equal the base.
    shrunk_to: int = 0
    validated_at: float = field(default_factory=time.monotonic)
    # This node's clock when its own write of the object (upload, rename copy, metadata copy)
    # returned; None when this mount has not written it. A listing showing a later LastModified
    # shows another client's write since, even with the ETag unchanged.
    written_to_s3_at: float | None = None
    deleted: bool = False
    open_handles: int = 0
    # Held by the uploader for a whole upload; rename and unlink wait for it, so an upload never
    # lands at a stale key.
    upload_lock: trio.Lock = field(default_factory=trio.Lock)
    # Held by content changes and while an upload fixes what it uploads.
    write_lock: trio.Lock = field(default_factory=trio.Lock)
    # An upload is reading the cache file through its own fd: a change must detach first.
    upload_pinned: bool = False
    # The version the file's journal row records (None: no row). Until the file's content changes,
    # the cache file holds exactly what the row describes; the first change after the row keeps
    # that content under `preserved_path(row_version)` and records it in `preserved_version`
    # (docs/architecture.md, "Changes to an acknowledged file before its upload").
    row_version: int | None = None
    preserved_version: int | None = None

    def preserved_path(self, version: int) -> Path:
        """Where the content of the row of `version` is kept while the cache file changes."""
        return self.data_path.with_name(preserved_name(self.file_id, version))

    @property
    def dirty(self) -> bool:
        return self.version != self.uploaded_version

    @property
    def needs_upload(self) -> bool:
        """Dirty with a version that close()/fsync() acknowledged (the uploader's work)."""
        return not self.deleted and self.journaled_version > self.uploaded_version

    def dirty_record(self, inline_data: bytes | None = None) -> DirtyRecord:
        return DirtyRecord(
            file_id=self.file_id,
            path=self.path,
            size=self.size,
            base_key=self.base_key,
            base_etag=self.base_etag,
            base_size=self.base_size,
            present=self.present.to_list(),
            written=self.written.to_list(),
            mode=self.attrs.mode,
            uid=self.attrs.uid,
            gid=self.attrs.gid,
            mtime=self.attrs.mtime,
            atime=self.attrs.access_time,
            ctime=self.attrs.change_time,
            inline_data=inline_data,
            version=self.version,
        )

    # Local file I/O is done synchronously on the trio thread: it hits the page cache, and doing it
    # between awaits makes each write atomic with the range-map update that describes it.
    def pwrite(self, data: bytes | memoryview, offset: int) -> None:
        fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def pread(self, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self.data_path, os.O_RDONLY)
        except FileNotFoundError:
            return bytes(length)
        try:
            data = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        # Holes past the sparse file's end read as zeros.
        return data + bytes(length - len(data)) if len(data) < length else data

    def truncate_data(self, size: int) -> None:
        fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def punch_hole(self, offset: int, length: int) -> None:
        """Frees the disk blocks of [offset, offset+length) (evicting clean data) keeping the size."""
        try:
            fd = os.open(self.data_path, os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            if _libc.fallocate(fd, _FALLOC_PUNCH_HOLE_KEEP_SIZE, ctypes.c_int64(offset), ctypes.c_int64(length)):
                err = ctypes.get_errno()
                raise OSError(err, f"punching a hole in {self.data_path}: {os.strerror(err)}")
        finally:
            os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
_FALLOC_PUNCH_HOLE_KEEP_SIZE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE


def preserved_name(file_id: int, version: int) -> str:
    """The file name, beside the cache file, of the content of the file's row of `version`."""
    return f"{file_id}.acked-{version}"
