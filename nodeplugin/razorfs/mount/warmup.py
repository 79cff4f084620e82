"""Warm-up of a mounted volume: which files a set of paths names (`files_of`), how much of them
the cache already holds (`cached_figures`), and `WarmJob`, which reads them into the cache.

A job runs as a task of the daemon's own nursery (the daemon owns it and cancels it on shutdown),
so a client that asked for it may watch its progress or go away (`--background`) without
stopping it. Its progress counts the bytes present in the cache of the file being read, so a
large file moves the bar while it is read, not only when it is done."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from razorfs.cache.file_cache import FileCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.fs.namespace import Namespace
from razorfs.log_format import FIELD_DURATION, FIELD_OP
from razorfs.store.errors import ObjectNotFound, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmFile:
    path: str  # relative to the volume root
    size: int


async def files_of(
    namespace: Namespace, store: MeteredStore, paths: list[str], recursive: bool
) -> list[WarmFile] | str:
    """The files `paths` name: a file itself, a directory's files (all below it when `recursive`,
    else its direct children). Returns a one-line reason instead when a path does not exist."""
    files: dict[str, WarmFile] = {}
    for raw in paths:
        path = raw.strip("/")
        node = await namespace.stat(path)
        if node is None:
            return f"{raw}: no such file or directory"
        if not node.is_dir:
            files[path] = WarmFile(path, node.size)
            continue
        for page in await store.list_all(namespace.dir_key(path), None if recursive else "/"):
            for obj in page.objects:
                if not obj.key.endswith("/") and not obj.key.endswith("_$folder$"):
                    file_path = namespace.path_of_key(obj.key)
                    files[file_path] = WarmFile(file_path, obj.size)
    return list(files.values())


def cached_bytes_of(cache: FileCache, path: str, size: int) -> int:
    """Bytes of the file at `path` (of `size` bytes) that reads would find in the cache."""
    f = cache.get(path)
    if f is None or size == 0:
        return 0
    # Bytes past the object's size, or written here, are local by nature; the rest must be present.
    base_end = min(size, f.base_size)
    missing = [gap for s, e in f.present.missing(0, base_end) for gap in f.written.missing(s, e)] if base_end else []
    return size - sum(end - start for start, end in missing)


def cached_figures(cache: FileCache, files: list[WarmFile]) -> dict[str, Any]:
    """What `razorfs warmup --check` prints: files and bytes in total and in the cache."""
    bytes_total = sum(f.size for f in files)
    cached = [cached_bytes_of(cache, f.path, f.size) for f in files]
    bytes_cached = sum(cached)
    return {
        "files_total": len(files),
        "files_cached": sum(1 for f, c in zip(files, cached, strict=True) if c >= f.size),
        "bytes_total": bytes_total,
        "bytes_cached": bytes_cached,
        "percent_cached": 100.0 if bytes_total == 0 else round(100.0 * bytes_cached / bytes_total, 2),
    }


@dataclass
class WarmJob:
    namespace: Namespace
    cache: FileCache
    store: MeteredStore
    files: list[WarmFile]
    files_done: int = 0
    bytes_done: int = 0  # of the files finished
    current: WarmFile | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    finished: trio.Event = field(default_factory=trio.Event)

    @property
    def bytes_total(self) -> int:
        return sum(f.size for f in self.files)

    def progress(self) -> dict[str, Any]:
        """One progress line of the control socket's `warm` (the NodeAdmin Warm stream's fields)."""
        current_bytes = 0
        if self.current is not None:
            current_bytes = cached_bytes_of(self.cache, self.current.path, self.current.size)
        return {
            "files_done": self.files_done,
            "files_total": len(self.files),
            "bytes_done": min(self.bytes_done + current_bytes, self.bytes_total),
            "bytes_total": self.bytes_total,
            "current_path": self.current.path if self.current is not None else "",
        }

    async def run(self) -> None:
        try:
            for warm_file in self.files:
                self.current = warm_file
                await self._warm_one(warm_file)
                self.bytes_done += warm_file.size
                self.files_done += 1
            self.current = None
            duration = time.monotonic() - self.started_at
            fields = {FIELD_OP: "warm", FIELD_DURATION: round(duration, 3)}
            log.info("warmed %d file(s), %d bytes in %.1fs", len(self.files), self.bytes_total, duration, extra=fields)
        except (StoreError, OSError) as err:
            self.error = f"{self.current.path if self.current else ''}: {type(err).__name__}: {err}"
            log.warning("warm-up stopped at %s", self.error)
        finally:
            self.finished.set()

    async def _warm_one(self, warm_file: WarmFile) -> None:
        try:
            info = await self.store.head(self.namespace.key_for(warm_file.path))
        except ObjectNotFound:
            return  # deleted since it was listed: nothing to warm
        attrs = (await self.namespace.stat(warm_file.path) or self.namespace.root_node()).attrs
        f = self.cache.get(warm_file.path) or self.cache.open_object(warm_file.path, info, attrs)
        await self.cache.warm(f)
