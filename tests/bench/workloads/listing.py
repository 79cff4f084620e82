"""Workload 4: `ls -l` (a stat of every entry) of a folder of many objects that another tool
wrote: cold on a fresh mount with the page cache dropped, then warm right after, then after a
remount on the same cache dir (what the node keeps across mounts), the page cache dropped again."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from ..context import BenchContext
from ..mounters import Mounter
from ..pagecache import drop_page_cache
from ..s3objects import count_objects, delete_prefix, put_many
from .base import Workload

PREFIX = "listing/"
OBJECT_BODY = b"x" * 100


def ls_long(folder: Path, expected: int) -> float:
    start = time.monotonic()
    listing = subprocess.run(["ls", "-l", "--color=never", str(folder)], capture_output=True, check=True)
    elapsed = time.monotonic() - start
    entries = len(listing.stdout.splitlines()) - 1  # the "total" line
    if entries != expected:
        raise AssertionError(f"`ls -l` showed {entries} entries, expected {expected}")
    return elapsed


class Listing(Workload):
    name = "listing"

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        count = ctx.sizes.list_objects
        names = [f"obj{i:06d}" for i in range(count)]
        if count_objects(ctx.s3, ctx.bucket, PREFIX) != count + 1:
            delete_prefix(ctx.s3, ctx.bucket, PREFIX)
            ctx.s3.put_object(Bucket=ctx.bucket, Key=PREFIX, Body=b"")
            put_many(ctx.s3, ctx.bucket, [PREFIX + n for n in names], OBJECT_BODY)
        local = local_root / PREFIX
        local.mkdir(parents=True, exist_ok=True)
        for name in names:
            (local / name).write_bytes(OBJECT_BODY)

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        count = ctx.sizes.list_objects
        cache = mounter.kept_cache_dir()
        try:
            with ctx.session(mounter, f"listing-{mounter.name}-r{run}", cache=cache) as root:
                drop_page_cache()
                ctx.count_requests_from_here()
                cold_s = ls_long(root / PREFIX, count)
                requests = ctx.requests_of("ls_cold")
                ctx.count_requests_from_here()
                warm_s = ls_long(root / PREFIX, count)
                requests |= ctx.requests_of("ls_warm")
            with ctx.session(mounter, f"listing-remount-{mounter.name}-r{run}", cache=cache) as root:
                drop_page_cache()
                ctx.count_requests_from_here()
                remount_s = ls_long(root / PREFIX, count)
                requests |= ctx.requests_of("ls_remount")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        return {"ls_cold_s": cold_s, "ls_warm_s": warm_s, "ls_remount_s": remount_s, **requests}

    def measure_boto3(self, ctx: BenchContext, run: int) -> dict[str, float]:
        # A listing already carries size and mtime, so the S3 limit of `ls -l` is the listing itself.
        client = ctx.workload_s3()
        ctx.count_requests_from_here()
        start = time.monotonic()
        count = count_objects(client, ctx.bucket, PREFIX) - 1
        elapsed = time.monotonic() - start
        if count != ctx.sizes.list_objects:
            raise AssertionError(f"listed {count} objects, expected {ctx.sizes.list_objects}")
        return {"ls_cold_s": elapsed, **ctx.requests_of("ls_cold")}

    def cleanup(self, ctx: BenchContext, local_root: Path) -> None:
        delete_prefix(ctx.s3, ctx.bucket, PREFIX)
