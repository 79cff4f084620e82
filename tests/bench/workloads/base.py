"""A workload: data prepared once, then one measurement per system per run."""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from pathlib import Path

from ..context import BenchContext
from ..mounters import Mounter
from ..sizes import MIB, BenchSizes

READ_CHUNK_BYTES = 1 * MIB
WRITE_CHUNK_BYTES = 1 * MIB
PATTERN_BLOCK_BYTES = 8 * MIB  # a multiple of WRITE_CHUNK_BYTES
# After an "until in S3" workload, what a system still sends on its own (a HEAD to verify an
# upload, a directory's metadata) is part of what it costs: the counting run waits this long.
REQUESTS_SETTLE_S = 1.0
FS_SYSTEMS = ("razorfs", "rclone", "s3fs", "local")
ALL_SYSTEMS = ("razorfs", "rclone", "s3fs", "boto3", "local")


class Workload(ABC):
    name: str
    systems: tuple[str, ...] = ALL_SYSTEMS

    def runs(self, sizes: BenchSizes) -> int:
        return sizes.runs

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:  # noqa: B027 - optional hook
        """Create the data every system reads; `local_root` is the local directory system's root."""

    @abstractmethod
    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]: ...

    def measure_boto3(self, ctx: BenchContext, run: int) -> dict[str, float]:
        raise NotImplementedError(f"{self.name} has no raw-S3 form")

    def cleanup(self, ctx: BenchContext, local_root: Path) -> None:  # noqa: B027 - optional hook
        """Remove what prepare() and the runs left behind, to keep the disk free."""


def read_whole_file(path: Path) -> int:
    total = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(READ_CHUNK_BYTES):
            total += len(chunk)
    return total


@functools.cache
def pattern_block() -> bytes:
    """8 MiB of random bytes, repeated to make big files (random so nothing compresses it)."""
    return os.urandom(PATTERN_BLOCK_BYTES)


def write_pattern_file(path: Path, size: int, fsync: bool = True) -> None:
    """Write `size` bytes of the pattern in WRITE_CHUNK_BYTES writes, like `dd bs=1M`."""
    block = pattern_block()
    view = memoryview(block)
    with open(path, "wb", buffering=0) as f:
        written = 0
        while written < size:
            n = min(WRITE_CHUNK_BYTES, size - written)
            offset = written % len(block)
            f.write(view[offset : offset + n])
            written += n
        if fsync:
            os.fsync(f.fileno())
