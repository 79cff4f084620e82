"""Workload 7: resident memory of the mount process while a big file streams through it (written
with 1 MiB writes and fsync, then read back cold). Peak RSS, and how much RSS still grew after the
first quarter of the file was written until fsync returned (the upload included): a daemon whose
memory follows the file size is not flat."""

from __future__ import annotations

import os
from pathlib import Path

from ..context import BenchContext
from ..memory import RssSampler
from ..mounters import Mounter
from ..pagecache import drop_page_cache
from ..s3objects import delete_prefix
from ..sizes import MIB, BenchSizes
from .base import READ_CHUNK_BYTES, WRITE_CHUNK_BYTES, Workload, pattern_block

PREFIX = "stream/"


class StreamRss(Workload):
    name = "rss"
    systems = ("razorfs", "rclone", "s3fs")

    def runs(self, sizes: BenchSizes) -> int:
        return min(sizes.runs, sizes.stream_runs)

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        ctx.s3.put_object(Bucket=ctx.bucket, Key=PREFIX, Body=b"")

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        size = ctx.sizes.stream_bytes
        name = f"{mounter.name}-r{run}.bin"
        with ctx.session(mounter, f"rss-{mounter.name}-r{run}") as root:
            if mounter.pid is None:
                raise AssertionError(f"{mounter.name} has no process to measure")
            with RssSampler(mounter.pid) as sampler:
                quarter_rss = self._stream_write(root / PREFIX / name, size, sampler)
                end_rss = sampler.sample_now()
                drop_page_cache()
                with open(root / PREFIX / name, "rb", buffering=0) as f:
                    while f.read(READ_CHUNK_BYTES):
                        pass
                sampler.sample_now()
        ctx.s3.delete_object(Bucket=ctx.bucket, Key=PREFIX + name)
        return {
            "stream_peak_rss_mib": sampler.peak_bytes / MIB,
            "stream_rss_growth_mib": max(0, end_rss - quarter_rss) / MIB,
        }

    @staticmethod
    def _stream_write(path: Path, size: int, sampler: RssSampler) -> int:
        """Write the file; returns the RSS seen when a quarter of it was written."""
        view = memoryview(pattern_block())
        quarter_rss = 0
        with open(path, "wb", buffering=0) as f:
            written = 0
            while written < size:
                offset = written % len(view)
                f.write(view[offset : offset + WRITE_CHUNK_BYTES])
                written += WRITE_CHUNK_BYTES
                if not quarter_rss and written >= size // 4:
                    quarter_rss = sampler.sample_now()
            os.fsync(f.fileno())
        return quarter_rss

    def cleanup(self, ctx: BenchContext, local_root: Path) -> None:
        delete_prefix(ctx.s3, ctx.bucket, PREFIX)
