"""Workload 3: many 4 KiB files created, written and closed one after another (the figure a
program feels), then the time until every one of them is an object in S3."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..context import BenchContext
from ..mounters import LocalDirMounter, Mounter
from ..s3objects import delete_prefix, wait_prefix_durable
from .base import REQUESTS_SETTLE_S, Workload

PREFIX = "small/"
FILE_BYTES = 4096
BOTO3_THREADS = 16


def file_body() -> bytes:
    return os.urandom(FILE_BYTES)


class SmallFiles(Workload):
    name = "small_files"

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        ctx.s3.put_object(Bucket=ctx.bucket, Key=PREFIX, Body=b"")
        (local_root / PREFIX).mkdir(parents=True, exist_ok=True)

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        count = ctx.sizes.small_files
        body = file_body()
        folder = f"{mounter.name}-r{run}"
        with ctx.session(mounter, f"small_files-{mounter.name}-r{run}") as root:
            target = root / PREFIX / folder
            ctx.count_requests_from_here()
            target.mkdir()
            start = time.monotonic()
            for i in range(count):
                with open(target / f"f{i:05d}", "wb", buffering=0) as f:
                    f.write(body)
            close_s = time.monotonic() - start
            if isinstance(mounter, LocalDirMounter):
                os.sync()  # the local disk's "durable": everything on the device
            else:
                wait_prefix_durable(ctx.s3, ctx.bucket, f"{PREFIX}{folder}/", count, FILE_BYTES)
            durable_s = time.monotonic() - start
            requests = ctx.requests_of("small_files", settle_s=REQUESTS_SETTLE_S)
        return {"small_files_close_s": close_s, "small_files_durable_s": durable_s, **requests}

    def measure_boto3(self, ctx: BenchContext, run: int) -> dict[str, float]:
        body = file_body()
        keys = [f"{PREFIX}boto3-r{run}/f{i:05d}" for i in range(ctx.sizes.small_files)]
        client = ctx.workload_s3()
        ctx.count_requests_from_here()
        start = time.monotonic()
        with ThreadPoolExecutor(BOTO3_THREADS) as pool:
            for future in [pool.submit(client.put_object, Bucket=ctx.bucket, Key=k, Body=body) for k in keys]:
                future.result()
        elapsed = time.monotonic() - start
        requests = ctx.requests_of("small_files")
        return {"small_files_close_s": elapsed, "small_files_durable_s": elapsed, **requests}

    def cleanup(self, ctx: BenchContext, local_root: Path) -> None:
        delete_prefix(ctx.s3, ctx.bucket, PREFIX)
