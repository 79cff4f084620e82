"""`MeteredStore`: the object store as the cache layer calls it: every call runs on a bounded
worker-thread pool (never on the trio loop) and is counted (requests, errors, bytes up and down,
last error) for `razorfs stats` and the metrics endpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from razorfs.store.base import CopyRange, FileRange, ListingPage, ObjectInfo, ObjectStore
from razorfs.store.errors import ObjectNotFound, StoreError

T = TypeVar("T")


@dataclass
class StoreStats:
    requests: int = 0
    errors: int = 0
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    last_error: str = ""


class MeteredStore:
    def __init__(self, store: ObjectStore, max_threads: int = 16) -> None:
        self.store = store
        self.limiter = trio.CapacityLimiter(max_threads)
        self.stats = StoreStats()
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        return self.store.description

    async def _call(self, fn: Callable[[], T], uploaded: int = 0) -> T:
        def counted() -> T:
            try:
                result = fn()
            except ObjectNotFound:
                with self._lock:
                    self.stats.requests += 1  # an answer, not a failure (lookups of absent names)
                raise
            except StoreError as err:
                with self._lock:
                    self.stats.requests += 1
                    self.stats.errors += 1
                    self.stats.last_error = f"{type(err).__name__}: {err}"
                raise
            with self._lock:
                self.stats.requests += 1
                self.stats.bytes_uploaded += uploaded
                if isinstance(result, bytes):
                    self.stats.bytes_downloaded += len(result)
            return result

        return await trio.to_thread.run_sync(counted, limiter=self.limiter)

    async def head(self, key: str) -> ObjectInfo:
        return await self._call(lambda: self.store.head(key))

    async def get_range(self, key: str, start: int, length: int, if_match: str | None = None) -> bytes:
        return await self._call(lambda: self.store.get_range(key, start, length, if_match))

    async def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        return await self._call(lambda: self.store.put_bytes(key, data, metadata), uploaded=len(data))

    async def put_file(self, key: str, path: Path, size: int, metadata: Mapping[str, str]) -> ObjectInfo:
        return await self._call(lambda: self.store.put_file(key, path, metadata), uploaded=size)

    async def compose(
        self, key: str, parts: Sequence[CopyRange | FileRange], metadata: Mapping[str, str]
    ) -> ObjectInfo:
        uploaded = sum(p.length for p in parts if isinstance(p, FileRange))
        return await self._call(lambda: self.store.compose(key, parts, metadata), uploaded=uploaded)

    async def copy(self, source_key: str, dest_key: str, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        return await self._call(lambda: self.store.copy(source_key, dest_key, metadata))

    async def delete(self, key: str) -> None:
        await self._call(lambda: self.store.delete(key))

    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._call(lambda: self.store.delete_many(keys))

    async def list_all(self, prefix: str, delimiter: str | None = "/") -> list[ListingPage]:
        """Every page under `prefix` (one worker thread walks the pagination)."""
        return await self._call(lambda: list(self.store.list_pages(prefix, delimiter)))

    async def list_first_page(self, prefix: str, delimiter: str | None = "/") -> ListingPage | None:
        def first() -> ListingPage | None:
            return next(iter(self.store.list_pages(prefix, delimiter)), None)

        return await self._call(first)

    async def check_bucket(self) -> None:
        await self._call(self.store.check_bucket)
