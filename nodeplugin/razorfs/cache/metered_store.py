"""`MeteredStore`: the object store as the cache layer calls it: every call runs on a bounded
worker-thread pool (never on the trio loop) and is counted (requests, errors, bytes up and down,
last error) for `razorfs stats` and the metrics endpoint. It also remembers, for a short while, that
the store could not be reached (a call ended in StoreUnavailable/Throttled, or a metadata probe
timed out), so metadata revalidation can serve the cache instead of waiting out the retry budget
on every lookup during a partition. Any successful call clears that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from razorfs.store.base import CopyRange, FileRange, ListingPage, ObjectInfo, ObjectStore
from razorfs.store.errors import ObjectNotFound, StoreError, StoreUnavailable, Throttled

T = TypeVar("T")

# How long the store counts as unreachable after a failure: revalidation serves the cache meanwhile.
UNREACHABLE_HOLD_S = 5.0


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
        self._unreachable_until = 0.0

    def retry_now(self) -> None:
        """Requests waiting out a backoff try again at once (a store without backoff: nothing)."""
        wake = getattr(self.store, "retry_now", None)
        if callable(wake):
            wake()

    @property
    def unreachable(self) -> bool:
        """True for a short while after the store could not be reached."""
        return time.monotonic() < self._unreachable_until

    def note_unreachable(self, hold_s: float = UNREACHABLE_HOLD_S) -> None:
        with self._lock:
            self._unreachable_until = max(self._unreachable_until, time.monotonic() + hold_s)

    def note_reachable(self) -> None:
        with self._lock:
            self._unreachable_until = 0.0

    @property
    def description(self) -> str:
        return self.store.description

    async def _call(self, fn: Callable[[], T], uploaded: int = 0, abandonable: bool = False) -> T:
        """`abandonable`: a read whose caller may stop waiting for it (cancellation leaves the
        worker thread to finish on its own); never for calls that change the bucket."""

        def counted() -> T:
            try:
                result = fn()
            except ObjectNotFound:
                with self._lock:
                    self.stats.requests += 1  # an answer, not a failure (lookups of absent names)
                    self._unreachable_until = 0.0
                raise
            except StoreError as err:
                with self._lock:
                    self.stats.requests += 1
                    self.stats.errors += 1
                    self.stats.last_error = f"{type(err).__name__}: {err}"
                if isinstance(err, (StoreUnavailable, Throttled)):
                    self.note_unreachable()
                raise
            with self._lock:
                self.stats.requests += 1
                self.stats.bytes_uploaded += uploaded
                if isinstance(result, bytes):
                    self.stats.bytes_downloaded += len(result)
                self._unreachable_until = 0.0
            return result

        return await trio.to_thread.run_sync(counted, limiter=self.limiter, abandon_on_cancel=abandonable)

    async def head(self, key: str) -> ObjectInfo:
        return await self._call(lambda: self.store.head(key), abandonable=True)

    async def get_range(self, key: str, start: int, length: int, if_match: str | None = None) -> bytes:
        return await self._call(lambda: self.store.get_range(key, start, length, if_match))

    async def get_object(self, key: str, if_match: str | None = None) -> bytes:
        return await self._call(lambda: self.store.get_object(key, if_match))

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
        return await self._call(lambda: list(self.store.list_pages(prefix, delimiter)), abandonable=True)

    async def list_first_page(
        self, prefix: str, delimiter: str | None = "/", page_keys: int | None = None
    ) -> ListingPage | None:
        def first() -> ListingPage | None:
            return next(iter(self.store.list_pages(prefix, delimiter, page_keys=page_keys)), None)

        return await self._call(first, abandonable=True)

    async def check_bucket(self) -> None:
        await self._call(self.store.check_bucket)
