"""Workload 5: random 4 KiB reads across the big object, cold: IOPS, and the bytes each system
pulled from S3 per byte read, counted on the wire by the counting proxy every system talks through.
Then warm: the same reads again with the page cache dropped, so each system serves them from its
local cache (a local directory from its disk), which is what "hot data on the node's disk" is."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from ..context import BenchContext
from ..mounters import LocalDirMounter, Mounter
from ..pagecache import drop_page_cache
from .base import Workload
from .seq_read import KEY, ensure_read_object

READ_BYTES = 4096
# Readahead a system started for the last reads still counts against it: wait for it to land.
SETTLE_S = 1.0


def read_offsets(size: int, count: int, run: int) -> list[int]:
    """The same block-aligned offsets for every system in a run; a different set per run."""
    rng = random.Random(7000 + run)
    blocks = size // READ_BYTES
    return [rng.randrange(blocks) * READ_BYTES for _ in range(count)]


def _timed_reads(fd: int, offsets: list[int]) -> float:
    start = time.monotonic()
    for offset in offsets:
        if len(os.pread(fd, READ_BYTES, offset)) != READ_BYTES:
            raise AssertionError(f"short read at {offset}")
    return time.monotonic() - start


class RandomRead(Workload):
    name = "random_read"

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        ensure_read_object(ctx, local_root)

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        offsets = read_offsets(ctx.sizes.seq_bytes, ctx.sizes.random_reads, run)
        with ctx.session(mounter, f"random_read-{mounter.name}-r{run}", through_proxy=True) as root:
            drop_page_cache()
            ctx.count_requests_from_here()  # requests count the open too; bytes only the reads
            fd = os.open(root / KEY, os.O_RDONLY)
            try:
                # Mount-time traffic (listing, probes) is not the reads' doing.
                ctx.proxy.reset(requests=not ctx.counting)
                elapsed = _timed_reads(fd, offsets)
                time.sleep(SETTLE_S)
                fetched = ctx.proxy.bytes_from_s3
                requests = ctx.requests_of("random_read")
                drop_page_cache()
                warm_s = _timed_reads(fd, offsets)
            finally:
                os.close(fd)
        figures = {
            "random_read_iops": len(offsets) / elapsed,
            "random_read_warm_iops": len(offsets) / warm_s,
            **requests,
        }
        if not isinstance(mounter, LocalDirMounter):
            figures["random_read_amplification"] = fetched / (len(offsets) * READ_BYTES)
        return figures

    def measure_boto3(self, ctx: BenchContext, run: int) -> dict[str, float]:
        offsets = read_offsets(ctx.sizes.seq_bytes, ctx.sizes.random_reads, run)
        client = ctx.proxied_s3()
        ctx.proxy.reset()
        start = time.monotonic()
        for offset in offsets:
            byte_range = f"bytes={offset}-{offset + READ_BYTES - 1}"
            body = client.get_object(Bucket=ctx.bucket, Key=KEY, Range=byte_range)["Body"].read()
            if len(body) != READ_BYTES:
                raise AssertionError(f"short ranged GET at {offset}")
        elapsed = time.monotonic() - start
        fetched = ctx.proxy.bytes_from_s3
        return {
            "random_read_iops": len(offsets) / elapsed,
            "random_read_amplification": fetched / (len(offsets) * READ_BYTES),
            **ctx.requests_of("random_read"),
        }
