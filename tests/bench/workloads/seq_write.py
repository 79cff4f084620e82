"""Workload 1: write one big file sequentially, fsync, and time until the object is whole in S3.

fsync has no upload meaning for rclone (its VFS cache uploads after close), so for every mount the
clock stops when S3 holds the full object; for RazorFS that is already true when fsync returns."""

from __future__ import annotations

import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from ..context import BenchContext
from ..mounters import LocalDirMounter, Mounter
from ..s3objects import delete_prefix, wait_object_durable
from ..sizes import MIB
from .base import REQUESTS_SETTLE_S, Workload, write_pattern_file

PREFIX = "seqwrite/"
# The S3 limit: s3transfer multipart with parallel parts, as an application tuned for S3 would.
BOTO3_TRANSFER = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=10)


class SeqWrite(Workload):
    name = "seq_write"

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        ctx.s3.put_object(Bucket=ctx.bucket, Key=PREFIX, Body=b"")
        (local_root / PREFIX).mkdir(parents=True, exist_ok=True)
        # boto3 uploads this file; it is in the page cache, as the mounts' source buffer is in memory.
        write_pattern_file(self.source(ctx), ctx.sizes.seq_bytes, fsync=False)

    def source(self, ctx: BenchContext) -> Path:
        return ctx.workdir / "seqwrite-source.bin"

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        name = f"{mounter.name}-r{run}.bin"
        size = ctx.sizes.seq_bytes
        with ctx.session(mounter, f"seq_write-{mounter.name}-r{run}") as root:
            ctx.count_requests_from_here()
            start = time.monotonic()
            write_pattern_file(root / PREFIX / name, size)
            if not isinstance(mounter, LocalDirMounter):
                wait_object_durable(ctx.s3, ctx.bucket, PREFIX + name, size)
            elapsed = time.monotonic() - start
            requests = ctx.requests_of("seq_write", settle_s=REQUESTS_SETTLE_S)
            if isinstance(mounter, LocalDirMounter):
                (root / PREFIX / name).unlink()
        # Deleted behind the mount's back once it is gone, to keep the S3 server's disk small.
        ctx.s3.delete_object(Bucket=ctx.bucket, Key=PREFIX + name)
        return {"seq_write_durable_s": elapsed, **requests}

    def measure_boto3(self, ctx: BenchContext, run: int) -> dict[str, float]:
        key = f"{PREFIX}boto3-r{run}.bin"
        client = ctx.workload_s3()
        ctx.count_requests_from_here()
        start = time.monotonic()
        client.upload_file(str(self.source(ctx)), ctx.bucket, key, Config=BOTO3_TRANSFER)
        elapsed = time.monotonic() - start
        requests = ctx.requests_of("seq_write")
        ctx.s3.delete_object(Bucket=ctx.bucket, Key=key)
        return {"seq_write_durable_s": elapsed, **requests}

    def cleanup(self, ctx: BenchContext, local_root: Path) -> None:
        delete_prefix(ctx.s3, ctx.bucket, PREFIX)
        self.source(ctx).unlink(missing_ok=True)
