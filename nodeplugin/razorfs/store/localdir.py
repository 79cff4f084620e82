"""`LocalDirStore`: an object store kept as files under one directory, for the demo and fast tests.

Each object is one file holding a small JSON header (key, ETag, metadata, mtime) followed by the
data, written to a temp file and renamed into place, so a reader sees the whole old or the whole
new object, never a mix. Keys map to a tree of escaped path segments (directories `d_<seg>`,
objects `o_<seg>`), so `a`, `a/` and `a/b` can all exist at once, as in S3."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from razorfs.store.base import CopyRange, FileRange, ListingPage, ObjectInfo, ObjectStore
from razorfs.store.errors import InvalidRequest, ObjectNotFound, PreconditionFailed

_MAGIC = b"RZO1"
_HEADER_LEN = struct.Struct(">4sI")  # magic, JSON header length
_COPY_CHUNK_BYTES = 1024 * 1024
_NAME_MAX = 255
LIST_PAGE_KEYS = 1000

# Writes an object's data into the file, feeding the hash, and returns the byte count.
_BodyWriter = Callable[[BinaryIO, "hashlib._Hash"], int]


def normalize_etag(etag: str) -> str:
    """ETags are compared and returned without the surrounding quotes S3 puts on the wire."""
    return etag.strip().strip('"')


class LocalDirStore:
    """Thread-safe: mutations hold one lock (a put's mkdir must not race a delete's rmdir of
    the same now-empty directory); reads take no lock, since rename swaps whole files."""

    def __init__(self, root: Path, page_keys: int = LIST_PAGE_KEYS):
        self.root = root
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._page_keys = page_keys
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return f"local directory {self.root}"

    # -- key <-> path -------------------------------------------------------------------------

    def _object_path(self, key: str) -> Path:
        if not key:
            raise InvalidRequest("object key must not be empty")
        *dirs, name = key.split("/")
        path = self._objects
        for seg in dirs:
            path = path / _escaped("d_", seg)
        return path / _escaped("o_", name)

    def _dir_path(self, dir_segments: Sequence[str]) -> Path:
        path = self._objects
        for seg in dir_segments:
            path = path / _escaped("d_", seg)
        return path

    # -- reads --------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo:
        with self._open(key) as f:
            info, _ = _read_header(f, key)
        return info

    def get_range(self, key: str, start: int, length: int, if_match: str | None = None) -> bytes:
        if start < 0 or length < 0:
            raise InvalidRequest(f"get_range {key}: bad range start={start} length={length}")
        with self._open(key) as f:
            info, data_offset = _read_header(f, key)
            if if_match is not None and normalize_etag(if_match) != info.etag:
                raise PreconditionFailed(f"get_range {key}: ETag is {info.etag}, expected {if_match}")
            if length == 0 or start >= info.size:
                return b""
            f.seek(data_offset + start)
            return f.read(min(length, info.size - start))

    def get_object(self, key: str, if_match: str | None = None) -> bytes:
        # Local files carry no checksum to check: the local disk is the cache's own trust domain.
        with self._open(key) as f:
            info, data_offset = _read_header(f, key)
            if if_match is not None and normalize_etag(if_match) != info.etag:
                raise PreconditionFailed(f"get_object {key}: ETag is {info.etag}, expected {if_match}")
            f.seek(data_offset)
            return f.read(info.size)

    def _open(self, key: str) -> BinaryIO:
        try:
            return open(self._object_path(key), "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"no object {key} in {self.description}") from None

    # -- writes -------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        return self._write(key, metadata, lambda out, md5: _copy_bytes(data, out, md5))

    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        def body(out: BinaryIO, md5: hashlib._Hash) -> int:
            with open(path, "rb") as src:
                return _copy_stream(src, out, md5, None)

        return self._write(key, metadata, body)

    def compose(
        self, key: str, parts: Sequence[CopyRange | FileRange], metadata: Mapping[str, str]
    ) -> ObjectInfo:
        # Read every copied range before writing: a source may be the destination itself.
        def body(out: BinaryIO, md5: hashlib._Hash) -> int:
            total = 0
            for part in parts:
                if isinstance(part, CopyRange):
                    with self._open(part.source_key) as src:
                        info, data_offset = _read_header(src, part.source_key)
                        if part.start < 0 or part.length < 0 or part.start + part.length > info.size:
                            raise InvalidRequest(
                                f"compose {key}: range {part.start}+{part.length} is outside "
                                f"{part.source_key} ({info.size} bytes)"
                            )
                        src.seek(data_offset + part.start)
                        total += _copy_stream(src, out, md5, part.length)
                else:
                    with open(part.path, "rb") as src:
                        src.seek(part.start)
                        copied = _copy_stream(src, out, md5, part.length)
                        if copied != part.length:
                            raise InvalidRequest(
                                f"compose {key}: {part.path} has only {copied} of {part.length} bytes "
                                f"at offset {part.start}"
                            )
                        total += copied
            return total

        return self._write(key, metadata, body)

    def copy(self, source_key: str, dest_key: str, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        with self._open(source_key) as src:
            info, data_offset = _read_header(src, source_key)
            src.seek(data_offset)
            new_metadata = info.metadata if metadata is None else metadata
            return self._write(
                dest_key, new_metadata, lambda out, md5: _copy_stream(src, out, md5, info.size)
            )

    def _write(
        self,
        key: str,
        metadata: Mapping[str, str],
        body: _BodyWriter,
    ) -> ObjectInfo:
        target = self._object_path(key)
        clean_metadata = {k.lower(): str(v) for k, v in metadata.items()}
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                # Reserve room for the header, write the data, then fill the header in: the
                # ETag is only known once every byte has been hashed.
                md5 = hashlib.md5()
                out.write(b"\0" * _HEADER_LEN.size)
                size = body(out, md5)
                info = ObjectInfo(key, size, md5.hexdigest(), time.time(), clean_metadata)
                header = json.dumps(
                    {"key": key, "etag": info.etag, "mtime": info.last_modified, "metadata": clean_metadata}
                ).encode()
                # The header goes at the end; the fixed prefix says where the data ends.
                out.write(header)
                out.seek(0)
                out.write(_HEADER_LEN.pack(_MAGIC, len(header)))
                out.flush()
                os.fsync(out.fileno())
            with self._lock:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return info

    def delete(self, key: str) -> None:
        path = self._object_path(key)
        with self._lock:
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                return
            self._prune_empty_dirs(path.parent)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)

    def _prune_empty_dirs(self, directory: Path) -> None:
        # Directories exist only while they hold objects, so listings never show empty prefixes.
        while directory != self._objects:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # -- listing ------------------------------------------------------------------------------

    def list_pages(
        self,
        prefix: str,
        delimiter: str | None = "/",
        start_after: str | None = None,
        page_keys: int | None = None,
    ) -> Iterator[ListingPage]:
        entries = sorted(self._collect(prefix, delimiter))
        if start_after is not None:
            entries = [e for e in entries if e[0] > start_after]
        step = page_keys or self._page_keys
        for i in range(0, max(len(entries), 1), step):
            chunk = entries[i : i + step]
            objects: list[ObjectInfo] = []
            prefixes: list[str] = []
            for name, path in chunk:
                if path is None:
                    prefixes.append(name)
                    continue
                try:
                    with open(path, "rb") as f:
                        info, _ = _read_header(f, name)
                except FileNotFoundError:
                    continue  # deleted since we walked the tree
                objects.append(ObjectInfo(info.key, info.size, info.etag, info.last_modified))
            yield ListingPage(objects, prefixes)

    def _collect(self, prefix: str, delimiter: str | None) -> Iterator[tuple[str, Path | None]]:
        """(key, path) for objects and (common prefix, None) for prefixes under `prefix`."""
        *dir_segments, partial = prefix.split("/")
        base_dir = self._dir_path(dir_segments)
        base_key = "".join(seg + "/" for seg in dir_segments)
        seen_prefixes: set[str] = set()
        for key, path in self._walk(base_dir, base_key, partial, shallow=delimiter == "/"):
            if path is None:
                yield key, None  # a "/"-delimited subdirectory, found without recursing into it
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common not in seen_prefixes:
                        seen_prefixes.add(common)
                        yield common, None
                    continue
            yield key, path

    def _walk(
        self, directory: Path, key_prefix: str, name_prefix: str, shallow: bool
    ) -> Iterator[tuple[str, Path | None]]:
        try:
            children = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for child in children:
            kind, name = child.name[:2], urllib.parse.unquote(child.name[2:])
            if not name.startswith(name_prefix):
                continue
            if kind == "o_":
                yield key_prefix + name, Path(child.path)
            elif kind == "d_":
                if shallow:
                    yield key_prefix + name + "/", None
                else:
                    yield from self._walk(Path(child.path), key_prefix + name + "/", "", shallow)

    def check_bucket(self, prefix: str = "") -> None:
        if not self._objects.is_dir():
            raise InvalidRequest(f"{self.description} is not a directory")

    def remove_all(self) -> None:
        """Deletes every object (tests and the demo reset with it)."""
        with self._lock:
            shutil.rmtree(self._objects)
            self._objects.mkdir()


def _escaped(kind: str, segment: str) -> str:
    name = kind + urllib.parse.quote(segment, safe="")
    if len(name.encode()) > _NAME_MAX:
        raise InvalidRequest(f"key segment too long for a local directory store: {segment[:40]}...")
    return name


def _read_header(f: BinaryIO, key: str) -> tuple[ObjectInfo, int]:
    """The object's record and the file offset where its data starts."""
    fixed = f.read(_HEADER_LEN.size)
    magic, header_len = _HEADER_LEN.unpack(fixed)
    if magic != _MAGIC:
        raise InvalidRequest(f"{key}: not an object file of a local directory store")
    end = f.seek(0, os.SEEK_END)
    size = end - _HEADER_LEN.size - header_len
    f.seek(_HEADER_LEN.size + size)
    header = json.loads(f.read(header_len))
    info = ObjectInfo(header["key"], size, header["etag"], header["mtime"], header["metadata"])
    return info, _HEADER_LEN.size


def _copy_bytes(data: bytes, out: BinaryIO, md5: hashlib._Hash) -> int:
    md5.update(data)
    out.write(data)
    return len(data)


def _copy_stream(src: BinaryIO, out: BinaryIO, md5: hashlib._Hash, limit: int | None) -> int:
    copied = 0
    while limit is None or copied < limit:
        want = _COPY_CHUNK_BYTES if limit is None else min(_COPY_CHUNK_BYTES, limit - copied)
        chunk = src.read(want)
        if not chunk:
            break
        md5.update(chunk)
        out.write(chunk)
        copied += len(chunk)
    return copied


def _conforms_to_protocol(store: LocalDirStore) -> ObjectStore:
    return store  # mypy proves LocalDirStore implements ObjectStore
