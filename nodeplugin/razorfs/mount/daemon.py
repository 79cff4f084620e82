"""`MountDaemon`: one mounted volume for the life of a process. It takes the cache dir's lock,
replays the journal (pending uploads resume), mounts FUSE, answers the control socket, and on
`shutdown`, SIGTERM/SIGINT or an external unmount flushes every dirty file to S3 before it exits,
so a volume is never reported unmounted with data only on the node.

Somewhat over 450 lines on purpose: the daemon's lifecycle (lock, replay, mount, serve, drain) and
the control socket's operations share its state (the cache, the uploader, the trio token); the
parts with their own nouns already live beside it (control.py, metrics.py, handover.py)."""

from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pyfuse3
import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.file_cache import FileCache
from razorfs.cache.journal import Journal
from razorfs.cache.metadata_cache import MetadataCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.cache.saved_heads import SavedHeads
from razorfs.cache.uploader import Uploader
from razorfs.errors import UsageError
from razorfs.fs.namespace import Namespace
from razorfs.fs.operations import FsOptions, RazorOperations
from razorfs.log_format import FIELD_ERRNO, FIELD_OP
from razorfs.mount import registry
from razorfs.mount.control import CONTROL_SOCKET_NAME, ControlOp, ControlServer, warm_path_problem
from razorfs.mount.handover import Session
from razorfs.mount.kernel_readahead import set_read_ahead
from razorfs.mount.metrics import DaemonMetrics, TimedStore, serve_metrics, volume_labels
from razorfs.mount.options import MountOptions
from razorfs.mount.warmup import WarmFile, WarmJob, cached_figures, files_of
from razorfs.store.base import ObjectStore
from razorfs.store.errors import StoreError

log = logging.getLogger(__name__)

LOCK_FILE_NAME = "lock"
JOURNAL_FILE_NAME = "journal.sqlite"
WARM_PROGRESS_INTERVAL_S = 0.5


def build_store(options: MountOptions) -> ObjectStore:
    if options.local_store is not None:
        from razorfs.store.localdir import LocalDirStore

        return LocalDirStore(options.local_store)
    from razorfs.store.s3 import S3Store
    from razorfs.store.s3_credentials import CredentialSource, MissingCredentials, StaticKeys, WebIdentityFailed
    from razorfs.store.s3_settings import S3Settings

    keys = None
    source: CredentialSource = "default-chain"
    if options.credential_source == "explicit":
        try:
            keys = StaticKeys.from_environment()
        except MissingCredentials as err:
            raise UsageError(str(err)) from None
        source = "explicit"
    elif options.credential_source == "web-identity":
        source = "web-identity"
    settings = S3Settings(
        bucket=options.location.bucket,
        endpoint_url=options.endpoint_url,
        region=options.region,
        force_path_style=options.force_path_style,
        ca_bundle=options.ca_bundle,
        sse=options.sse,  # type: ignore[arg-type]  # validated by argparse choices
        sse_kms_key_id=options.sse_kms_key_id,
        credential_source=source,
        credentials=keys,
        web_identity=options.web_identity if source == "web-identity" else None,
    )
    try:
        return S3Store(settings)
    except (MissingCredentials, WebIdentityFailed) as err:  # a missing or refused token, STS unreachable
        raise UsageError(str(err), exit_code=1) from None


def _is_dead_mount(mountpoint: Path) -> bool:
    """True for a FUSE mount whose daemon is gone. statvfs goes to the filesystem; stat alone may
    be answered from the kernel's attribute cache even though the connection is dead."""
    try:
        os.statvfs(mountpoint)
        os.stat(mountpoint)
    except OSError as err:
        if err.errno == errno.ENOTCONN:
            return True
        raise UsageError(f"mountpoint {mountpoint}: {err.strerror}") from err
    return False


def prepare_mountpoint(mountpoint: Path) -> None:
    """Lazily unmounts dead FUSE mounts left at `mountpoint` (bind mounts may stack several);
    refuses a live mount or a non-empty directory."""
    for _ in range(8):
        if not _is_dead_mount(mountpoint):
            break
        log.warning("%s is a dead FUSE mount: unmounting it lazily", mountpoint)
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
    if not mountpoint.is_dir():
        raise UsageError(f"mountpoint {mountpoint} is not a directory")
    if os.path.ismount(mountpoint):
        raise UsageError(f"mountpoint {mountpoint} is already mounted")
    if any(os.scandir(mountpoint)):
        raise UsageError(f"mountpoint {mountpoint} is not empty")


# Everything the daemon writes (cache dir, data ranges, the journal that holds small files'
# contents inline, its WAL, the lock, the control socket) is the owner's only, from creation.
PRIVATE_UMASK = 0o077


def lock_cache_dir(cache_dir: Path) -> int:
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(cache_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise UsageError(f"cache dir {cache_dir} is in use by another razorfs mount (pid {holder or '?'})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class MountDaemon:
    """`on_ready` runs once the mount serves; `handed_over` says the FUSE session came from the
    node plugin (it mounted, it tunes the mount, it unmounts, and it finds us without the
    registry, whose /run this daemon may not even have)."""

    def __init__(
        self,
        options: MountOptions,
        store: ObjectStore,
        on_ready: Callable[[], None] | None = None,
        handed_over: bool = False,
    ) -> None:
        self.options = options
        self.on_ready = on_ready
        self.handed_over = handed_over
        self.object_store = store
        journal_path = options.cache_dir / JOURNAL_FILE_NAME
        self._trio_token: trio.lowlevel.TrioToken | None = None
        labels = volume_labels(options.volume_label, options.node_name)
        self.metrics = DaemonMetrics(labels, self._stats_from_any_thread, journal_path)
        self.store = MeteredStore(cast(ObjectStore, TimedStore(store, self.metrics)))
        self.journal = Journal(journal_path)
        key_for = options.location.key_for
        self.cache = FileCache(
            options.cache_dir, self.store, self.journal, options.cache_size_bytes, key_for, options.metadata_ttl_s
        )
        self.uploader = Uploader(self.cache)
        # HEAD answers kept across mounts of this cache dir (`ls -l` after a remount needs no HEAD).
        self.saved_heads = SavedHeads(options.cache_dir, options.location.url)
        self.meta = MetadataCache(options.metadata_ttl_s, self.saved_heads)
        self.namespace = Namespace(self.store, self.cache, self.meta, key_for, options.defaults)
        self.ops = RazorOperations(
            self.namespace,
            self.cache,
            self.uploader,
            FsOptions(
                cache_mode=options.cache_mode,
                metadata_ttl_s=options.metadata_ttl_s,
                fsync_timeout_s=options.fsync_timeout_s,
            ),
            on_init=self._on_fuse_init,
        )
        self.metrics.time_fuse_operations(self.ops)
        # When each file now dirty was first seen dirty (by a stats call): the oldest dirty age.
        self._dirty_since: dict[int, float] = {}
        self.control = ControlServer(options.cache_dir / CONTROL_SOCKET_NAME, self.handle_request)
        self._flushed_for_exit = False
        self._nursery: trio.Nursery | None = None
        self._terminating = False
        # Resolved now: once mounted, any stat of the mountpoint from this process would ask our
        # own (not yet running) FUSE loop and deadlock.
        # A handed-over session is mounted already: resolving its path would be that very stat.
        self.real_mountpoint = (
            str(options.mountpoint) if handed_over else registry.real_mountpoint(options.mountpoint)
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def replay_journal(self) -> int:
        files = self.cache.replay_journal()
        for f in files:
            self.uploader.enqueue(f)
        if files:
            log.info("journal replay: %d file(s) acknowledged before a restart are being uploaded", len(files))
        return len(files)

    def fuse_options(self) -> set[str]:
        opts = set(pyfuse3.default_options) | {"fsname=razorfs", "subtype=razorfs"}
        if self.options.allow_other:
            opts.add("allow_other")
        if self.options.cache_mode == "readonly":
            opts.add("ro")
        return opts

    async def main(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
        # Renames a kill cut short are finished before anything is served or uploaded: until
        # then an old name would show through (FileCache.move).
        await self.cache.finish_moves()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.cache.bind_nursery(nursery)
            self.namespace.bind_nursery(nursery)
            nursery.start_soon(self.uploader.run)
            nursery.start_soon(self.saved_heads.run)
            await nursery.start(self.control.serve)
            nursery.start_soon(self._watch_signals)
            if not self.handed_over:
                registry.write_record(
                    registry.MountRecord(
                        mountpoint=self.real_mountpoint,
                        cache_dir=str(self.options.cache_dir),
                        control_socket=str(self.control.socket_path),
                        pid=os.getpid(),
                    )
                )
            task_status.started()
            if self.on_ready is not None:
                self.on_ready()
            log.info("mounted %s at %s", self.store.description, self.options.mountpoint)
            await pyfuse3.main()
            # Here after terminate() (flushed already) or an unmount from outside (not yet).
            if not self._flushed_for_exit:
                log.info("unmounted from outside: flushing before exit")
                await self.uploader.flush()
            nursery.cancel_scope.cancel()

    def _on_fuse_init(self) -> None:
        # The kernel fixes the readahead window when it takes the reply to FUSE's INIT, which
        # pyfuse3 sends right after this call returns, before the task started here runs. The
        # daemon never waits on its own mount for that moment (a stat of the mountpoint): a
        # thread waiting on a request to its own mount that this process has read cannot be
        # killed, and holds /dev/fuse open, so after a SIGKILL the process never ends.
        if not self.handed_over and self._nursery is not None:
            self._nursery.start_soon(self._widen_read_ahead)

    async def _widen_read_ahead(self) -> None:
        await trio.to_thread.run_sync(set_read_ahead, Path(self.real_mountpoint))

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("%s: flushing, then unmounting", signal.Signals(signum).name)
                await self._flush_and_terminate(timeout_s=math.inf)
                return

    async def _flush_and_terminate(self, timeout_s: float) -> int | None:
        """Flushes (retrying while S3 is unreachable, up to `timeout_s`) and ends the FUSE loop.
        Returns the bytes flushed, or None when the flush timed out (the daemon keeps running)."""
        with trio.move_on_after(timeout_s):
            flushed = await self.uploader.flush()
            self._flushed_for_exit = True
            if not self._terminating:
                self._terminating = True
                pyfuse3.terminate()
            return flushed
        return None

    # -- control socket ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        s = self.store.stats
        dirty = self.cache.dirty_files()
        return {
            "cached_bytes": self.cache.cached_bytes,
            "dirty_bytes": self.cache.dirty_bytes,
            "uploading_bytes": self.cache.uploading_bytes,
            "cache_limit_bytes": self.cache.limit_bytes,
            "hits": self.cache.counters.hits,
            "misses": self.cache.counters.misses,
            "opens_keeping_pages": self.cache.counters.opens_keeping_pages,
            "opens_dropping_pages": self.cache.counters.opens_dropping_pages,
            "bytes_uploaded": s.bytes_uploaded,
            "bytes_downloaded": s.bytes_downloaded,
            "s3_requests": s.requests,
            "s3_errors": s.errors,
            "last_error": self.uploader.last_error or s.last_error,
            "mountpoint": str(self.options.mountpoint),
            "volume": self.options.location.url,
            "pid": os.getpid(),
            "files_cached": len(self.cache.files_under("")),
            "dirty_files": len(dirty),
            "evicted_bytes": self.cache.counters.evicted_bytes,
            "s3_unreachable": int(self.store.unreachable),
            "upload_queue_files": sum(1 for f in dirty if f.needs_upload),
            "upload_failed_attempts": self.uploader.failed_attempts,
            "oldest_dirty_age_s": round(self._oldest_dirty_age(dirty), 3),
        }

    def _stats_from_any_thread(self) -> dict[str, Any]:
        """stats() read on the trio loop, which owns the cache's state: `--metrics-port` scrapes
        arrive on the HTTP server's thread (the control socket's `metrics` op on the loop)."""
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            if self._trio_token is not None:
                try:
                    return trio.from_thread.run_sync(self.stats, trio_token=self._trio_token)
                except trio.RunFinishedError:
                    pass  # the loop is gone: nothing else touches the cache any more
        return self.stats()

    def _oldest_dirty_age(self, dirty: list[CachedFile]) -> float:
        now = time.monotonic()
        ids = {f.file_id for f in dirty}
        for file_id in ids - self._dirty_since.keys():
            self._dirty_since[file_id] = now
        for file_id in self._dirty_since.keys() - ids:
            del self._dirty_since[file_id]
        return now - min(self._dirty_since.values()) if self._dirty_since else 0.0

    async def handle_request(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        op = request.get("op")
        try:
            if op == ControlOp.STATS:
                yield {"ok": True, "stats": self.stats()}
            elif op == ControlOp.FLUSH:
                timeout = float(request.get("timeout_s") or math.inf)
                flushed: int | None = None
                with trio.move_on_after(timeout):
                    flushed = await self.uploader.flush()
                if flushed is None:
                    yield {"ok": False, "error": f"flush timed out after {timeout}s: {self.uploader.last_error}"}
                else:
                    yield {"ok": True, "flushed_bytes": flushed}
            elif op == ControlOp.SHUTDOWN:
                timeout = float(request.get("timeout_s") or math.inf)
                done = await self._flush_and_terminate(timeout)
                if done is None:
                    yield {"ok": False, "error": f"flush did not finish in {timeout}s: {self.uploader.last_error}"}
                else:
                    yield {"ok": True, "flushed_bytes": done}
            elif op == ControlOp.METRICS:
                yield {"ok": True, "metrics": self.metrics.exposition()}
            elif op == ControlOp.CREDENTIALS:
                yield self._replace_credentials(request)
            elif op == ControlOp.WARM:
                async for line in self._warm(request):
                    yield line
            elif op == ControlOp.CACHED:
                yield await self._cached(request)
            else:
                yield {"ok": False, "error": f"unknown op {op!r}"}
        except (StoreError, OSError, ValueError) as err:
            fields = {FIELD_OP: f"control.{op}", FIELD_ERRNO: getattr(err, "errno", None)}
            log.warning("control op %s failed: %s: %s", op, type(err).__name__, err, extra=fields)
            yield {"ok": False, "error": f"{type(err).__name__}: {err}"}

    def _replace_credentials(self, request: dict[str, Any]) -> dict[str, Any]:
        """New keys (a rotated Secret, a refreshed session token) for the next S3 requests. The
        reply never echoes them; only a daemon on explicit credentials accepts them."""
        from razorfs.store.s3 import S3Store
        from razorfs.store.s3_credentials import MissingCredentials, StaticKeys

        inner = self.object_store
        if not isinstance(inner, S3Store) or self.options.credential_source != "explicit":
            return {"ok": False, "error": "this mount does not use explicit credentials"}
        try:
            keys = StaticKeys(
                str(request.get("access_key_id") or ""),
                str(request.get("secret_access_key") or ""),
                str(request.get("session_token") or "") or None,
            )
        except MissingCredentials as err:
            return {"ok": False, "error": str(err)}
        inner.replace_credentials(keys)
        log.info("S3 credentials replaced; the next requests sign with the new ones")
        return {"ok": True}

    async def _warm(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Reads the named files (a directory's files; all below it unless `recursive` is false)
        into the cache, reporting progress every WARM_PROGRESS_INTERVAL_S. With `background`, the
        reply comes at once and the job goes on in the daemon's nursery."""
        files = await self._files_of_request(request)
        if isinstance(files, str):
            yield {"ok": False, "error": files}
            return
        assert self._nursery is not None, "control requests are served inside main()"
        job = WarmJob(self.namespace, self.cache, self.store, files)
        self._nursery.start_soon(job.run)
        if request.get("background"):
            yield {"ok": True, "background": True, **job.progress()}
            return
        while not job.finished.is_set():
            yield {"progress": job.progress()}
            with trio.move_on_after(WARM_PROGRESS_INTERVAL_S):
                await job.finished.wait()
        yield {"progress": job.progress()}
        yield {"ok": False, "error": job.error} if job.error else {"ok": True}

    async def _cached(self, request: dict[str, Any]) -> dict[str, Any]:
        """How much of the named files the cache holds (`razorfs warmup --check`)."""
        files = await self._files_of_request(request)
        if isinstance(files, str):
            return {"ok": False, "error": files}
        return {"ok": True, "cached": cached_figures(self.cache, files)}

    async def _files_of_request(self, request: dict[str, Any]) -> list[WarmFile] | str:
        paths = [str(p) for p in request.get("paths", [])]
        for raw in paths:
            problem = warm_path_problem(raw)
            if problem is not None:
                return problem
        return await files_of(self.namespace, self.store, paths, bool(request.get("recursive", True)))


def run_mount(options: MountOptions, session: Session | None = None) -> int:
    """Runs the daemon in this process until it is unmounted; returns the exit code. With a
    `session` the FUSE mount exists already (the node plugin made it) and the daemon serves the
    descriptor it was handed (the caller tells the plugin when it cannot)."""
    os.umask(PRIVATE_UMASK)
    if session is None:
        prepare_mountpoint(options.mountpoint)
    lock_fd = lock_cache_dir(options.cache_dir)
    daemon: MountDaemon | None = None
    mounted = False
    try:
        store = build_store(options)
        store.check_bucket()
        daemon = MountDaemon(options, store, session.served if session else None, handed_over=session is not None)
        daemon.replay_journal()
        metrics = None
        if options.metrics_port is not None:
            metrics = serve_metrics(options.metrics_port, daemon.metrics)
        # libfuse serves an already mounted descriptor given as /dev/fd/N (and never unmounts it).
        fuse_target = f"/dev/fd/{session.fuse_fd}" if session is not None else str(options.mountpoint)
        pyfuse3.init(daemon.ops, fuse_target, daemon.fuse_options())
        mounted = True
        trio.run(daemon.main)
        if metrics is not None:
            metrics.shutdown()
        return 0
    finally:
        if mounted:
            pyfuse3.close(unmount=True)
        if daemon is not None and session is None:
            registry.remove_record(daemon.real_mountpoint, os.getpid())
        if daemon is not None:
            daemon.saved_heads.close()
            daemon.journal.close()
        os.close(lock_fd)


def wait_until_unmounted(mountpoint: Path, pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not registry.pid_alive(pid):
            return True
        time.sleep(0.05)
    return False
