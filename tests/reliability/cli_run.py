"""Running the `razorfs` command line as a user does, and judging its failure output: one line on
stderr, no traceback, a non-zero exit."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from tests.reliability.mount_process import RAZORFS_BIN

CLI_TIMEOUT_S = 90.0


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def assert_one_line_failure(self) -> str:
        """The failure a user sees: non-zero exit, exactly one non-empty stderr line, no traceback."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert self.returncode != 0, f"expected failure, got exit 0 (stdout {self.stdout!r})"
        assert "Traceback" not in self.stderr + self.stdout, self.stderr
        assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {self.stderr!r}"
        return lines[0]


def run_razorfs(args: list[str], env: dict[str, str], timeout_s: float = CLI_TIMEOUT_S) -> CliResult:
    done = subprocess.run([RAZORFS_BIN, *args], env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    return CliResult(done.returncode, done.stdout, done.stderr)
