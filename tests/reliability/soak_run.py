"""`make soak DURATION=30m`: the long reliability tests for a given wall time, then what they did.

    python -m tests.reliability.soak_run --duration 30m [-- PYTEST_ARGS...]

Runs `pytest -m slow` with RAZORFS_SOAK=1; the timed loops (crash runs, random operations,
workloads under faults: TIMED_TESTS) share the duration equally (RAZORFS_SOAK_SECONDS each) and add
their operations, crashes, bytes and seconds to a report file. Prints the totals; exits non-zero if
pytest failed, or if the timed loops ran less than the duration asked (a loop that stopped early
or never ran)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from razorfs.volume_spec import parse_duration

TIMED_TESTS = 3  # test_crashes, test_random_ops and test_faults each have one timed loop
REPO = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", required=True, help="e.g. 30m, 2h, 600s")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    duration_s = parse_duration(args.duration)
    if duration_s <= 0:
        parser.error("--duration must be positive")
    with tempfile.TemporaryDirectory(prefix="razorfs-soak-") as tmp:
        report_path = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "RAZORFS_SOAK": "1",
            "RAZORFS_SOAK_SECONDS": str(duration_s / TIMED_TESTS),
            "RAZORFS_SOAK_REPORT": str(report_path),
        }
        started = time.monotonic()
        pytest = [sys.executable, "-m", "pytest", "-m", "slow", *args.pytest_args]
        status = subprocess.run(pytest, cwd=REPO, env=env, check=False).returncode
        wall_s = time.monotonic() - started
        totals = json.loads(report_path.read_text()) if report_path.exists() else {}
    timed_s = totals.get("timed_seconds", 0)
    print(
        f"soak: asked {duration_s:.0f}s, ran {wall_s:.0f}s (timed loops {timed_s}s); "
        f"operations {totals.get('operations', 0)}, crashes {totals.get('crashes', 0)}, "
        f"bytes checked in S3 {totals.get('bytes_in_s3', 0)}; pytest exit {status}",
        flush=True,
    )
    if status != 0:
        return status
    if timed_s < duration_s * 0.99 or not totals.get("operations") or not totals.get("crashes"):
        print(f"soak: FAILED: ran short of the {duration_s:.0f}s asked (or a timed loop did nothing)", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
