"""Workload sizes: the issue's full sizes and the `--quick` ones (same code paths, smaller data)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True)
class BenchSizes:
    name: str
    runs: int
    seq_bytes: int  # sequential write, sequential read and the random-read object
    small_files: int
    list_objects: int
    random_reads: int
    stream_bytes: int  # the RSS workload's streamed file
    stream_runs: int  # streaming 4 GiB per system is the longest step; memory is not noise-bound
    # Source-tree folders under /usr/include that the untar workload archives.
    tree_dirs: tuple[str, ...]
    cp_volumes: int  # RazorVolumes applied at once
    cp_stage_samples: int  # stage + publish calls timed through the CSI plugin

    def labels(self) -> dict[str, str]:
        return {
            "seq": human_bytes(self.seq_bytes),
            "files": f"{self.small_files:,}",
            "objects": f"{self.list_objects:,}",
            "stream": human_bytes(self.stream_bytes),
            "tree": "/usr/include/{" + ",".join(self.tree_dirs) + "}",
            "volumes": str(self.cp_volumes),
            "stages": str(self.cp_stage_samples),
        }


# The issue's sizes. At today's RazorFS speed (about 10 ms per small file, one HEAD per entry in
# `ls -l`) a run of these takes over 40 minutes on the 2-core bench machine.
ISSUE = BenchSizes(
    name="issue",
    runs=3,
    seq_bytes=1 * GIB,
    small_files=5000,
    list_objects=20000,
    random_reads=2000,
    stream_bytes=4 * GIB,
    stream_runs=1,
    tree_dirs=("linux", "c++", "llvm-14"),
    cp_volumes=200,
    cp_stage_samples=50,
)

# The default: what fits in about 20 minutes. Big-file workloads keep the issue's sizes (1 GiB; the
# RSS stream is 2 GiB, still 16x the range-cache chunk); the per-file and per-entry workloads use
# fewer files, which changes the totals but not the per-file cost the ratios compare.
FULL = BenchSizes(
    name="full",
    runs=3,
    seq_bytes=1 * GIB,
    small_files=2000,
    list_objects=5000,
    random_reads=1000,
    stream_bytes=2 * GIB,
    stream_runs=1,
    tree_dirs=("linux", "c++"),
    cp_volumes=200,
    cp_stage_samples=20,
)

QUICK = BenchSizes(
    name="quick",
    runs=2,
    seq_bytes=128 * MIB,
    small_files=500,
    list_objects=2000,
    random_reads=300,
    stream_bytes=512 * MIB,
    stream_runs=1,
    tree_dirs=("linux",),
    cp_volumes=20,
    cp_stage_samples=5,
)

PRESETS: dict[str, BenchSizes] = {s.name: s for s in (QUICK, FULL, ISSUE)}


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} B"
