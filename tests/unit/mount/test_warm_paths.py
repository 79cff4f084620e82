"""Warm paths are relative to the volume root: the one check both the node plugin and the daemon
apply before reading anything."""

from __future__ import annotations

import pytest

from razorfs.mount.control import warm_path_problem


@pytest.mark.parametrize("path", ["", "big/", "a/b/c.bin", ".hidden", "a/..b", "...", "./x", "a//b"])
def test_paths_inside_the_volume_are_accepted(path: str) -> None:
    assert warm_path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("..", "'..' segment"),
        ("../other-prefix", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/..", "'..' segment"),
        ("/etc/passwd", "absolute"),
        ("a\nb", "control characters"),
        ("x" * 1025, "longer than"),
    ],
)
def test_paths_that_could_leave_the_volume_are_refused(path: str, reason: str) -> None:
    problem = warm_path_problem(path)
    assert problem is not None and reason in problem
