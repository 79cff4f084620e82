"""The CLI side of warm-up without a daemon: PATH arguments become volume paths, and progress
without a terminal is plain lines (at most one a second), with a live bar only on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from razorfs.errors import UsageError
from razorfs.mount.progress import TransferProgress, human_bytes
from razorfs.mount.warmup_command import volume_paths


def test_paths_inside_the_mount_become_volume_paths(tmp_path: Path) -> None:
    mnt = str(tmp_path)
    assert volume_paths(mnt, []) == [""]
    assert volume_paths(mnt, [mnt, f"{mnt}/a/b", "c/d", "./e/", "f/../g"]) == ["", "a/b", "c/d", "e", "g"]


@pytest.mark.parametrize("path", ["/etc", "..", "a/../../b"])
def test_paths_outside_the_mount_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UsageError, match="not inside the mount"):
        volume_paths(str(tmp_path / "mnt"), [path])


def test_without_a_terminal_progress_is_plain_lines_with_rate_and_eta() -> None:
    out = io.StringIO()
    progress = TransferProgress("warmup", stream=out, live=False)
    progress.update(512 * 1024, 2 * 1024 * 1024, 1, 4)
    progress.update(1024 * 1024, 2 * 1024 * 1024, 2, 4)  # within the second: no line
    progress.close()  # the last figures, always
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[0].startswith("warmup: 1/4 files, 512.0KiB/2.0MiB (25%), ")
    assert lines[1].startswith("warmup: 2/4 files, 1.0MiB/2.0MiB (50%), ")
    assert "/s, ETA " in lines[1]


def test_on_a_terminal_progress_is_one_redrawn_bar() -> None:
    out = io.StringIO()
    progress = TransferProgress("flush", stream=out, live=True)
    for done in (0, 1024, 4096):
        progress.update(done, 4096)
    progress.close()
    text = out.getvalue()
    assert text.count("\r") >= 3 and "flush: 100%" in text and "4.00k/4.00k" in text


def test_sizes_are_printed_in_binary_units() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**3)] == ["0B", "1023B", "1.0KiB", "5.0GiB"]
