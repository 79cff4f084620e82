"""Workload 2: read a big object that another tool (boto3) wrote: cold (fresh mount, empty cache,
page cache dropped), then warm (the same file again through the same mount)."""

from __future__ import annotations

import io
import time
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from ..context import BenchContext
from ..mounters import Mounter
from ..pagecache import drop_page_cache
from ..s3objects import object_size
from ..sizes import MIB
from .base import Workload, read_whole_file, write_pattern_file

KEY = "seqread/big.bin"
BOTO3_TRANSFER = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=10)


class NullSink(io.RawIOBase):
    """A seekable writable that keeps nothing: s3transfer writes parts out of order into it."""

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return offset


def ensure_read_object(ctx: BenchContext, local_root: Path) -> None:
    """The object of the read workloads, in S3 (written by boto3) and in the local directory."""
    size = ctx.sizes.seq_bytes
    local = local_root / KEY
    if not local.exists() or local.stat().st_size != size:
        local.parent.mkdir(parents=True, exist_ok=True)
        write_pattern_file(local, size)
    if object_size(ctx.s3, ctx.bucket, KEY) != size:
        ctx.s3.put_object(Bucket=ctx.bucket, Key="seqread/", Body=b"")
        ctx.s3.upload_file(str(local), ctx.bucket, KEY, Config=BOTO3_TRANSFER)


def mib_per_s(size: int, seconds: float) -> float:
    return size / MIB / seconds


class SeqRead(Workload):
    name = "seq_read"

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        ensure_read_object(ctx, local_root)

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        size = ctx.sizes.seq_bytes
        with ctx.session(mounter, f"seq_read-{mounter.name}-r{run}") as root:
            drop_page_cache()
            ctx.count_requests_from_here()
            start = time.monotonic()
            cold_bytes = read_whole_file(root / KEY)
            cold_s = time.monotonic() - start
            requests = ctx.requests_of("seq_read_cold")
            ctx.count_requests_from_here()
            start = time.monotonic()
            warm_bytes = read_whole_file(root / KEY)
            warm_s = time.monotonic() - start
            requests |= ctx.requests_of("seq_read_warm")
        if cold_bytes != size or warm_bytes != size:
            raise AssertionError(f"read {cold_bytes}/{warm_bytes} bytes of a {size}-byte object")
        return {
            "seq_read_cold_mibps": mib_per_s(size, cold_s),
            "seq_read_warm_mibps": mib_per_s(size, warm_s),
            **requests,
        }

    def measure_boto3(self, ctx: BenchContext, run: int) -> dict[str, float]:
        client = ctx.workload_s3()
        ctx.count_requests_from_here()
        start = time.monotonic()
        client.download_fileobj(ctx.bucket, KEY, NullSink(), Config=BOTO3_TRANSFER)
        elapsed = time.monotonic() - start
        return {"seq_read_cold_mibps": mib_per_s(ctx.sizes.seq_bytes, elapsed), **ctx.requests_of("seq_read_cold")}
