"""How long the reliability tests run: the short mode in `make test`, the long one in `make soak`.

`RAZORFS_SOAK=1` selects the long versions (the issue's numbers: 50 crash runs, 100,000 random
operations, a 30 s partition). With `RAZORFS_SOAK_SECONDS` the timed loops (crash runs, random
operations, workloads under faults) run for that long each instead, and report what they did to
`RAZORFS_SOAK_REPORT` (`make soak DURATION=30m`, tests/reliability/soak_run.py, splits the duration
between them, prints the totals and fails if they ran short). `RAZORFS_RELIABILITY_SEED` replays
one seed."""

from __future__ import annotations

import os
import time
from pathlib import Path

SOAK = os.environ.get("RAZORFS_SOAK") == "1"
SOAK_SECONDS = float(os.environ.get("RAZORFS_SOAK_SECONDS", "0") or 0)
BASE_SEED = int(os.environ.get("RAZORFS_RELIABILITY_SEED", "20261125"))


def pick(short: int, soak: int) -> int:
    return soak if SOAK else short


def pick_float(short: float, soak: float) -> float:
    return soak if SOAK else short


TIMED = SOAK and SOAK_SECONDS > 0


class Budget:
    """A wall-clock bound for a long loop: unlimited unless RAZORFS_SOAK_SECONDS is set in soak
    mode (the short mode is bounded by its counts alone)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._deadline = self.started + SOAK_SECONDS if TIMED else None

    def exhausted(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def keep_going(self, done: int, count: int) -> bool:
        """Whether a loop that did `done` rounds goes on: timed, until the deadline; else `count`."""
        return not self.exhausted() if TIMED else done < count

    def report_time(self) -> None:
        """Adds this loop's seconds to the soak report (`timed_seconds`, checked by soak_run)."""
        if TIMED:
            report(timed_seconds=round(time.monotonic() - self.started))


REPORT_PATH = os.environ.get("RAZORFS_SOAK_REPORT", "")


def report(**counts: int) -> None:
    """Adds what a long test did (operations, crashes, bytes) to the soak's report file
    (RAZORFS_SOAK_REPORT, a JSON object of totals), which `make soak` prints and checks."""
    if not REPORT_PATH:
        return
    import json

    path = Path(REPORT_PATH)
    totals: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    for name, value in counts.items():
        totals[name] = totals.get(name, 0) + value
    path.write_text(json.dumps(totals, indent=1, sort_keys=True) + "\n")
