"""Deterministic file contents and file-size mixes for the workloads of the reliability tests: a
file's bytes follow from (seed, name, size), so any process can recompute what a file must hold."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to the workload's root
    size: int


def content_for(seed: int, path: str, size: int) -> bytes:
    return random.Random(f"{seed}:{path}:{size}").randbytes(size)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mixed_files(seed: int, count: int, large_bytes: int = 20 * MiB, large_every: int = 50) -> list[FileSpec]:
    """Mostly small files, some medium, one large (multipart) file every `large_every`, spread over a
    few directories; empty files included."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        if i % large_every == large_every - 1:
            size = large_bytes + rng.randint(0, MiB)
        else:
            size = rng.choice(
                [0, rng.randint(1, 4 * KiB), rng.randint(4 * KiB, 256 * KiB), rng.randint(256 * KiB, 2 * MiB)]
            )
        specs.append(FileSpec(f"d{i % 4}/file-{i:04d}.bin", size))
    return specs


def write_file(path: Path, data: bytes, fsync: bool = False) -> None:
    """open/write/(fsync)/close, the way a program saves a file; returns once close() returned."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[: 4 * MiB]) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
