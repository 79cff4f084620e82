"""A description of the machine and tool versions, recorded with every result set."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return "unknown"


def describe_machine(weed: str) -> dict[str, str]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{os.cpu_count()} x {_cpu_model()}",
        "memory": _mem_gib(),
        "kernel": platform.release(),
        "s3": _first_line([weed, "version"]),
        "rclone": _first_line(["rclone", "version"]),
        "s3fs": _first_line(["s3fs", "--version"]),
        "note": "shared with other engineers' test runs while measuring",
    }
