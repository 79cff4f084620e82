"""`razorfs mount --fsync-timeout`: parsed once into MountOptions, and passed on to the detached
daemon's command line."""

from __future__ import annotations

import argparse

import pytest

from razorfs.errors import UsageError
from razorfs.fs.operations import DEFAULT_FSYNC_TIMEOUT_S
from razorfs.mount.commands import _child_argv
from razorfs.mount.options import add_mount_arguments, mount_options_from_args


def parse(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_mount_arguments(parser)
    return parser.parse_args(["s3://bucket/prefix", "/mnt/x", "--cache-dir", "/var/cache/x", *extra])


@pytest.mark.parametrize(
    ("flag", "seconds"),
    [(None, DEFAULT_FSYNC_TIMEOUT_S), ("2s", 2.0), ("500ms", 0.5), ("5m", 300.0), ("0", None), ("block", None)],
)
def test_fsync_timeout_is_a_duration_and_zero_or_block_means_wait_however_long(
    flag: str | None, seconds: float | None
) -> None:
    args = parse(*(["--fsync-timeout", flag] if flag else []))
    assert mount_options_from_args(args).fsync_timeout_s == seconds


def test_a_bad_fsync_timeout_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        mount_options_from_args(parse("--fsync-timeout", "soon"))


def test_the_detached_daemon_gets_the_same_fsync_timeout() -> None:
    argv = _child_argv(parse("--fsync-timeout", "block"))
    assert argv[argv.index("--fsync-timeout") + 1] == "block"
