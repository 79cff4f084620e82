"""How long the reliability tests run: the short mode in `make test`, the long one in `make soak`.

`RAZORFS_SOAK=1` selects the long versions (the issue's numbers: 50 crash runs, 100,000 random
operations, a 30 s partition); `RAZORFS_SOAK_SECONDS` bounds each long test's wall time so a soak
can be as long or as short as asked. `RAZORFS_RELIABILITY_SEED` replays one seed."""

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


class Budget:
    """A wall-clock bound for a long loop: unlimited unless RAZORFS_SOAK_SECONDS is set in soak
    mode (the short mode is bounded by its counts alone)."""

    def __init__(self) -> None:
        self._deadline = time.monotonic() + SOAK_SECONDS if SOAK and SOAK_SECONDS > 0 else None

    def exhausted(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline


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
