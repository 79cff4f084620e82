"""`Uploader`: the background writeback. Parallel workers upload every file whose acknowledged
version is not in S3 yet, retrying store failures with exponential backoff and jitter for as long
as it takes (data close() acknowledged is never dropped). `wait_uploaded` backs fsync() and
writethrough close(); `flush` backs `razorfs flush`, unmount and SIGTERM. Alongside, a sync loop
runs the local fsync rounds close() waits for (at once when a closer asks; the closes that arrive
during a round share the next one), and every LOCAL_SYNC_INTERVAL_S for rows nobody waits on."""

from __future__ import annotations

import logging
import math
import random
import sqlite3
from collections import deque

import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.errors import CacheConflict, UploadStalled
from razorfs.cache.file_cache import FileCache
from razorfs.store.errors import StoreError

log = logging.getLogger(__name__)

UPLOAD_WORKERS = 4
FIRST_RETRY_DELAY_S = 0.2
MAX_RETRY_DELAY_S = 30.0
# Rows no closer waits for (attribute changes, private copies) are made power-safe this often.
LOCAL_SYNC_INTERVAL_S = 1.0
# How often a bounded fsync past its deadline looks whether an upload attempt failed.
STALL_CHECK_INTERVAL_S = 0.5
# While programs close files one after another (the last commit less than CLOSE_LULL_S ago),
# uploads wait for a lull, as long as the oldest queued file has waited less than MAX_HOLD_S
# (rclone's default write-back delay is 5 s too); nobody waiting on an upload (fsync, flush,
# writethrough close) is ever held. An upload's botocore CPU takes the GIL from the FUSE loop:
# 1,000 x 4 KiB files closed in 4.2 s with uploads running beside them, 1.75 s held back (paired,
# 5 pairs); all were in S3 about 10% later (5.3 -> 5.8 s), the uploads then running after the burst.
CLOSE_LULL_S = 0.02
MAX_HOLD_S = 5.0


class Uploader:
    def __init__(self, cache: FileCache, workers: int = UPLOAD_WORKERS) -> None:
        self.cache = cache
        self.workers = workers
        self._queue: deque[CachedFile] = deque()
        self._queued_at: dict[int, float] = {}  # file_id -> when queued, for every file in _queue
        self._upload_waiters = 0  # tasks in wait_uploaded: uploads are not held while there are any
        self._wakeup = trio.Event()
        self._retry_now = trio.Event()  # set by flush: uploads waiting to retry go at once
        self.last_error = ""
        self.failed_attempts = 0
        cache.on_needs_upload = self.enqueue

    def enqueue(self, f: CachedFile) -> None:
        if f.file_id in self._queued_at:
            return
        self._queued_at[f.file_id] = _now_or_long_ago()
        self._queue.append(f)
        self._wakeup.set()

    async def run(self) -> None:
        """Runs the workers until cancelled (the daemon owns and cancels this task)."""
        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(self._worker)
            nursery.start_soon(self._sync_loop)

    async def _sync_loop(self) -> None:
        while True:
            with trio.move_on_after(LOCAL_SYNC_INTERVAL_S):
                await self.cache.sync_wanted.wait()  # a closer is waiting (group commit)
            try:
                await self.cache.sync_round()
            except (OSError, sqlite3.Error) as err:  # the disk failing: keep trying, say so each round
                log.error("syncing acknowledged cache files to the local disk failed: %s", err)

    async def _worker(self) -> None:
        while True:
            while not self._queue:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            f = self._queue[0]
            await self._give_way_to_closes(self._queued_at[f.file_id])
            if not self._queue or self._queue[0] is not f:
                continue  # another worker took it meanwhile
            self._queue.popleft()
            del self._queued_at[f.file_id]
            await self._upload_until_done(f)

    async def _give_way_to_closes(self, queued_at: float) -> None:
        """Holds an upload while closes come in a burst (see CLOSE_LULL_S)."""
        while True:
            now = trio.current_time()
            lull_at = self.cache.last_commit_at + CLOSE_LULL_S
            if self._upload_waiters or now >= lull_at or now >= queued_at + MAX_HOLD_S:
                return
            await trio.sleep_until(min(lull_at, queued_at + MAX_HOLD_S))

    async def _upload_until_done(self, f: CachedFile) -> None:
        delay = FIRST_RETRY_DELAY_S
        while f.needs_upload:
            try:
                async with f.upload_lock:
                    if not f.needs_upload:
                        return
                    await self.cache.upload(f)
                self.last_error = ""
                # Written again since the snapshot and already acknowledged: go round once more.
                continue
            except (StoreError, CacheConflict, OSError) as err:
                self.failed_attempts += 1
                self.last_error = f"upload of {f.path}: {type(err).__name__}: {err}"
                log.warning("%s; retrying in %.1fs", self.last_error, delay)
                with trio.move_on_after(delay * (0.5 + random.random())):
                    await self._retry_now.wait()
                delay = min(delay * 2, MAX_RETRY_DELAY_S)

    async def wait_uploaded(self, f: CachedFile, give_up_after_s: float | None = None) -> None:
        """Returns once the version the file had at the call is in S3 (commit it first). With
        `give_up_after_s` (fsync's bound), raises UploadStalled once that long has passed and an
        upload attempt failed meanwhile (S3 down or refusing); a slow upload that is not failing
        is waited for. The upload itself goes on either way."""
        target = f.journaled_version
        failures_before = self.failed_attempts
        deadline = math.inf if give_up_after_s is None else trio.current_time() + give_up_after_s
        self._upload_waiters += 1
        try:
            while not f.deleted and f.uploaded_version < target:
                now = trio.current_time()
                if now >= deadline and self.failed_attempts > failures_before:
                    raise UploadStalled(
                        f"{f.path} is not in S3 after {give_up_after_s:g}s of failing uploads ({self.last_error}); "
                        "it stays dirty and is uploaded once S3 answers"
                    )
                # Past the deadline with no failure yet: look again at each failure's retry pace.
                with trio.move_on_at(deadline if now < deadline else now + STALL_CHECK_INTERVAL_S):
                    await self.cache.wait_changed()
        finally:
            self._upload_waiters -= 1

    async def flush(self) -> int:
        """Commits every dirty file and waits until nothing is dirty; returns the bytes flushed."""
        flushed = 0
        # A flush (unmount, unstage, `razorfs flush`) retries failed uploads now, not after their
        # backoff, which may have grown to MAX_RETRY_DELAY_S while S3 was down.
        self._retry_now.set()
        self._retry_now = trio.Event()
        self.cache.store.retry_now()  # and requests inside their own backoff (store.retry)
        while True:
            dirty = self.cache.dirty_files()
            if not dirty:
                return flushed
            for f in dirty:
                await self.cache.commit(f)
            for f in dirty:
                if f.dirty:
                    flushed += f.size
                    await self.wait_uploaded(f)


def _now_or_long_ago() -> float:
    """trio's clock; -inf before trio runs (files queued by the journal's replay): never held."""
    try:
        return trio.current_time()
    except RuntimeError:
        return -math.inf
