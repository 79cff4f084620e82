"""py-spy sampling of the RazorFS daemon while a workload runs (`--profile`; `--profile gil`
samples only the thread holding the GIL, which is where a GIL-bound daemon's CPU goes, where the
default also shows threads waiting for it in the line they wait in).

Each session writes collapsed stacks (`--format raw`) next to the results, and `top_frames`
turns them into the self-time table that goes into the bottleneck report."""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

SAMPLE_RATE_HZ = 200


class Profiler:
    def __init__(self, out_dir: Path, gil_only: bool = False) -> None:
        self.out_dir = out_dir
        self.gil_only = gil_only
        self._proc: subprocess.Popen[bytes] | None = None
        self.current: Path | None = None
        exe = Path(sys.executable).with_name("py-spy")
        found = str(exe) if exe.exists() else shutil.which("py-spy")
        if found is None:
            raise RuntimeError("py-spy not found: pip install py-spy (the `bench` extra)")
        self._exe = found

    def start(self, pid: int, label: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.current = self.out_dir / f"{label}.txt"
        argv = [
            self._exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(SAMPLE_RATE_HZ),
            "--subprocesses", "--threads", "--nonblocking", "--output", str(self.current),
        ] + (["--gil"] if self.gil_only else [])  # fmt: skip
        log = open(self.out_dir / f"{label}.log", "wb")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def stop(self) -> Path | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            # SIGINT makes py-spy write its output; anything else loses the samples.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return self.current


def top_frames(collapsed: Path, limit: int = 15) -> list[tuple[str, float]]:
    """The functions that were on top of the stack most often, as (frame, share of samples)."""
    self_counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        self_counts[stack.split(";")[-1]] += count
    if total == 0:
        return []
    return [(frame, count / total) for frame, count in self_counts.most_common(limit)]


def top_inclusive(collapsed: Path, limit: int = 25) -> list[tuple[str, float]]:
    """Frames by inclusive share: where the daemon's time goes, callers included."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for frame in set(stack.split(";")):
            counts[frame] += count
    if total == 0:
        return []
    return [(frame, count / total) for frame, count in counts.most_common(limit)]
