"""Resident memory of a mount process (and its children), sampled in a background thread."""

from __future__ import annotations

import threading
from pathlib import Path

SAMPLE_INTERVAL_S = 0.1


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_rss_bytes(pid: int) -> int:
    """VmRSS of `pid` plus every descendant: a daemon that forks workers is charged for them."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
        pending += _children(current)
    return total


class RssSampler:
    """Samples RSS until stopped; `at(fraction)` gives the RSS seen when progress passed a mark."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self.current_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.current_bytes = tree_rss_bytes(self.pid)
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample_now(self) -> int:
        value = tree_rss_bytes(self.pid)
        self.peak_bytes = max(self.peak_bytes, value)
        return value
