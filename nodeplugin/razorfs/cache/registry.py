"""`FileRegistry`: every `CachedFile` of the volume by path and by id, the next file id, and the
"something changed" event that waiters (back-pressure, fsync, flush) sleep on. It only indexes:
what a file's state means is up to the modules that change it."""

from __future__ import annotations

from collections.abc import Iterable

import trio

from razorfs.cache.cached_file import CachedFile


class FileRegistry:
    def __init__(self, next_file_id: int) -> None:
        self._files: dict[str, CachedFile] = {}
        self._by_id: dict[int, CachedFile] = {}
        self._next_file_id = next_file_id
        self._changed = trio.Event()

    def new_file_id(self) -> int:
        file_id = self._next_file_id
        self._next_file_id += 1
        return file_id

    def add(self, f: CachedFile) -> None:
        self._files[f.path] = f
        self._by_id[f.file_id] = f

    def remove(self, f: CachedFile) -> None:
        if self._files.get(f.path) is f:
            del self._files[f.path]
        self._by_id.pop(f.file_id, None)

    def rekey(self, f: CachedFile, new_path: str) -> None:
        """`f` is known under `new_path` from now on (its id does not change)."""
        if self._files.get(f.path) is f:
            del self._files[f.path]
        f.path = new_path
        self._files[new_path] = f

    # -- lookup -----------------------------------------------------------------------------------

    def get(self, path: str) -> CachedFile | None:
        return self._files.get(path)

    def by_id(self, file_id: int) -> CachedFile | None:
        return self._by_id.get(file_id)

    def files(self) -> Iterable[CachedFile]:
        """A live view: iterate it only between awaits, on the trio thread."""
        return self._files.values()

    def files_under(self, dir_path: str) -> list[CachedFile]:
        prefix = dir_path + "/" if dir_path else ""
        # list() first: the metrics thread reads these while the trio thread changes the dict.
        return [f for p, f in list(self._files.items()) if p.startswith(prefix)]

    def children_of(self, dir_path: str) -> list[CachedFile]:
        """Cached files directly in `dir_path` (new files not in S3 yet show up through this)."""
        prefix = dir_path + "/" if dir_path else ""
        return [f for p, f in self._files.items() if p.startswith(prefix) and "/" not in p[len(prefix) :]]

    def dirty_files(self) -> list[CachedFile]:
        return [f for f in list(self._files.values()) if f.dirty]

    @property
    def dirty_bytes(self) -> int:
        return sum(max(f.written.total(), 1) for f in self.dirty_files())

    # -- change notification ----------------------------------------------------------------------

    def notify(self) -> None:
        """Wakes every `wait_changed` caller (a file changed state, or bytes were freed)."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()
