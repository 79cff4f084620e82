"""The suite: one SeaweedFS server, every workload through every system in alternating runs
(run 0: A B C ..., run 1: A B C ...), figures recorded as they come, everything torn down on exit.
After the timed runs of a workload with S3 request groups, one more untimed run per S3 system
counts its requests through the counting proxy (see context.py); only those counts are kept, in
run slot 0.

A system that fails a run is recorded as failed for that run and the suite goes on: a figure that
is missing says more than a suite that stops at the first broken peer."""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tests.realparts.s3server import S3Server, start_seaweedfs

from .context import BenchContext
from .control_plane import measure_control_plane
from .counting_proxy import CountingProxy
from .machine import describe_machine
from .metrics import REQUEST_GROUPS, REQUEST_MARK
from .mounters import MOUNTERS, LocalDirMounter, Mounter
from .profiler import Profiler
from .results import ResultSet
from .sizes import BenchSizes
from .workloads import WORKLOADS
from .workloads.base import Workload

BUCKET = "razorfs-bench"


@dataclass
class SuiteOptions:
    sizes: BenchSizes
    systems: list[str]
    workloads: list[str]
    out_dir: Path
    profile: str | None  # None, "all" (every thread, waits included) or "gil" (the GIL's holder)
    keep_workdir: bool


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every mount and server is torn down on the way out."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _keep_traceback(ctx: BenchContext, what: str) -> None:
    """Full tracebacks go to errors.log next to the results; the console gets one line."""
    with open(ctx.out_dir / "errors.log", "a") as log:
        log.write(f"=== {time.strftime('%H:%M:%S')} {what}\n{traceback.format_exc()}\n")


def _measure(
    ctx: BenchContext, workload: Workload, system: str, mounters: dict[str, Mounter], run: int, counting: bool = False
) -> None:
    """One timed run; or, `counting`, the untimed counting run (run index past the timed ones, so
    names do not collide) whose request counts are recorded in slot 0 and other figures dropped."""
    start = time.monotonic()
    what = "counting run" if counting else f"run {run}"
    ctx.counting = counting
    try:
        if system == "boto3":
            figures = workload.measure_boto3(ctx, run)
        else:
            figures = workload.measure_fs(ctx, mounters[system], run)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        ctx.results.fail(workload.name, system, run, f"{what}: {type(exc).__name__}: {exc}"[:400])
        _log(f"  {workload.name} {system} {what}: FAILED {type(exc).__name__}: {str(exc)[:300]}")
        _keep_traceback(ctx, f"{workload.name} {system} {what}")
        return
    finally:
        ctx.counting = False
    if counting:
        figures = {k: v for k, v in figures.items() if REQUEST_MARK in k}
    for metric, value in figures.items():
        ctx.results.record(metric, system, 0 if counting else run, value)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in figures.items() if REQUEST_MARK not in k or k.endswith("_total"))
    _log(f"  {workload.name} {system} {what}: {shown} ({time.monotonic() - start:.1f}s)")


def run_workload(ctx: BenchContext, workload: Workload, systems: list[str], mounters: dict[str, Mounter]) -> None:
    local_root = mounters["local"].mountpoint if "local" in mounters else ctx.workdir / "local" / "root"
    local_root.mkdir(parents=True, exist_ok=True)
    active = [s for s in systems if s in workload.systems]
    _log(f"{workload.name}: preparing data")
    try:
        workload.prepare(ctx, local_root)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        for system in active:
            ctx.results.fail(workload.name, system, -1, f"prepare failed: {type(exc).__name__}: {exc}"[:400])
        _log(f"{workload.name}: prepare FAILED {exc}")
        _keep_traceback(ctx, f"{workload.name} prepare")
        return
    try:
        for run in range(workload.runs(ctx.sizes)):
            for system in active:
                _measure(ctx, workload, system, mounters, run)
        if any(g.workload == workload.name for g in REQUEST_GROUPS):
            for system in active:
                if system != "local":
                    _measure(ctx, workload, system, mounters, workload.runs(ctx.sizes), counting=True)
    finally:
        workload.cleanup(ctx, local_root)


def start_s3(workdir: Path) -> S3Server:
    """SeaweedFS, with one retry: on this shared machine its filer now and then misses the
    readiness deadline, and one slow start should not cost a whole benchmark session."""
    try:
        return start_seaweedfs(workdir / "s3")
    except TimeoutError as exc:
        _log(f"SeaweedFS did not come up ({exc}); retrying once")
        return start_seaweedfs(workdir / "s3-retry")


def run_control_plane(ctx: BenchContext) -> None:
    """One run: the stack is large (etcd, apiserver, operator, plugin) and the figure is a total."""
    _log(f"control_plane: {ctx.sizes.cp_volumes} RazorVolumes, {ctx.sizes.cp_stage_samples} stage+publish")
    try:
        figures = measure_control_plane(ctx.workdir, ctx.sizes.cp_volumes, ctx.sizes.cp_stage_samples)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        ctx.results.fail("control_plane", "razorfs", 0, f"{type(exc).__name__}: {exc}"[:400])
        _log(f"  control_plane razorfs: FAILED {type(exc).__name__}: {str(exc)[:300]}")
        _keep_traceback(ctx, "control_plane")
        return
    for metric, value in figures.items():
        ctx.results.record(metric, "razorfs", 0, value)
    _log("  control_plane razorfs: " + ", ".join(f"{k}={v:.4g}" for k, v in figures.items()))


def run_suite(options: SuiteOptions) -> ResultSet:
    sizes = options.sizes
    results = ResultSet(sizes.name, sizes.runs, options.systems, sizes.labels())
    workdir = Path(tempfile.mkdtemp(prefix="razorfs-bench-"))
    options.out_dir.mkdir(parents=True, exist_ok=True)
    _log(f"work directory {workdir}; results to {options.out_dir}")
    with ExitStack() as stack, sigterm_as_interrupt():
        if not options.keep_workdir:
            stack.callback(shutil.rmtree, workdir, True)
        server = start_s3(workdir)
        stack.callback(server.stop)
        results.machine = describe_machine(server.process.argv[0])
        proxy = stack.enter_context(CountingProxy(server.endpoint_url))
        s3 = server.client()  # type: ignore[no-untyped-call]
        s3.create_bucket(Bucket=BUCKET)
        profiler = Profiler(options.out_dir / "profiles", options.profile == "gil") if options.profile else None
        ctx = BenchContext(sizes, server, s3, BUCKET, workdir, options.out_dir, results, proxy, profiler)
        mounters: dict[str, Mounter] = {
            name: MOUNTERS[name](workdir, server, BUCKET) for name in options.systems if name != "boto3"
        }
        if "local" not in mounters:
            mounters["local"] = LocalDirMounter(workdir, server, BUCKET)  # prepare() still writes there
        for workload_type in WORKLOADS:
            workload = workload_type()
            if workload.name not in options.workloads:
                continue
            run_workload(ctx, workload, options.systems, mounters)
            results.save(options.out_dir / "results.json")  # partial results survive a later failure
        if "control_plane" in options.workloads and "razorfs" in options.systems:
            run_control_plane(ctx)
            results.save(options.out_dir / "results.json")
    return results
