"""`razorfs warmup`, `status` and `flush` on a real mount: a live progress bar on a pseudo-terminal,
plain lines without one, and `--check` saying 100% once the tree is warm."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.fs.conftest import MountedVolume, MountFactory
from tests.realparts.faultproxy import Fault, FaultProxy
from tests.realparts.s3server import S3Server

MIB = 1024 * 1024


def _put_tree(s3_client: Any, bucket: str, prefix: str, files: int, file_bytes: int) -> int:
    """`files` objects of `file_bytes` each under <prefix>/tree/, in two levels of directories."""
    block = os.urandom(file_bytes)
    for index in range(files):
        key = f"{prefix}/tree/d{index % 3}/sub{index % 2}/f{index:03d}.bin"
        s3_client.put_object(Bucket=bucket, Key=key, Body=block)
    return files * file_bytes


def _run_in_pty(
    env: dict[str, str], *argv: str, timeout_s: float = 120, on_output: Callable[[str], None] | None = None
) -> tuple[int, str]:
    """Runs `python -m razorfs.mount ARGV` with a pseudo-terminal as stdin, stdout and stderr;
    `on_output` sees the output so far after each read."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # 30 rows, 120 columns
    proc = subprocess.Popen(
        [sys.executable, "-m", "razorfs.mount", *argv],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
        close_fds=True,
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed its end
                chunk = b""
            if not chunk and proc.poll() is not None:
                break
            output += chunk
            if on_output is not None:
                on_output(output.decode(errors="replace"))
        elif proc.poll() is not None:
            break
    os.close(controller)
    code = proc.wait(timeout=10)
    return code, output.decode(errors="replace")


def _check(vol: MountedVolume, *paths: str) -> tuple[int, dict[str, Any]]:
    result = vol.cli("warmup", str(vol.mountpoint), *paths, "--recursive", "--check", "--json", timeout=60)
    assert result.returncode in (0, 3), result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, figures


def test_warmup_draws_a_progress_bar_on_a_terminal_and_check_then_says_100_percent(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    total = _put_tree(s3_client, bucket, "vol", files=12, file_bytes=4 * MIB)
    vol = razorfs_mount()
    code, before = _check(vol, "tree")
    assert code == 3 and before["bytes_total"] == total and before["bytes_cached"] == 0

    code, output = _run_in_pty(vol.env, "warmup", str(vol.mountpoint), "tree", "--recursive")

    assert code == 0, output + vol.log[-2000:]
    assert "\r" in output, output  # the bar redraws in place
    assert "warmup:" in output and "100%" in output, output
    assert "12/12 files" in output, output
    assert "B/s" in output, output  # rate
    assert "warmed 12 file(s), 48.0MiB" in output, output
    code, after = _check(vol, "tree")
    assert code == 0 and after["percent_cached"] == 100.0
    assert after["files_cached"] == after["files_total"] == 12


def test_warmup_without_a_terminal_prints_plain_lines_and_respects_recursion(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    _put_tree(s3_client, bucket, "vol", files=6, file_bytes=MIB)
    s3_client.put_object(Bucket=bucket, Key="vol/tree/top.bin", Body=b"x" * 1000)
    vol = razorfs_mount()

    shallow = vol.cli("warmup", str(vol.mountpoint), f"{vol.mountpoint}/tree")
    assert shallow.returncode == 0, shallow.stderr
    assert "\r" not in shallow.stderr
    assert "warmup: 1/1 files" in shallow.stderr, shallow.stderr
    assert _check(vol, "tree")[1]["files_cached"] == 1

    deep = vol.cli("warmup", str(vol.mountpoint), "tree", "-r")
    assert deep.returncode == 0, deep.stderr
    assert "warmup: 7/7 files" in deep.stderr and "ETA" in deep.stderr, deep.stderr
    code, figures = _check(vol, "tree")
    assert code == 0 and figures["percent_cached"] == 100.0


def test_warmup_in_the_background_returns_at_once_and_finishes(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    _put_tree(s3_client, bucket, "vol", files=4, file_bytes=2 * MIB)
    vol = razorfs_mount()
    result = vol.cli("warmup", str(vol.mountpoint), "--recursive", "--background", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["background"] is True
    deadline = time.monotonic() + 60
    while _check(vol)[0] != 0:
        assert time.monotonic() < deadline, "the background warm-up did not finish"
        time.sleep(0.2)


def test_warmup_refuses_paths_outside_the_mount_and_missing_ones(razorfs_mount: MountFactory) -> None:
    vol = razorfs_mount()
    outside = vol.cli("warmup", str(vol.mountpoint), "/etc")
    assert outside.returncode == 2 and "not inside the mount" in outside.stderr
    missing = vol.cli("warmup", str(vol.mountpoint), "nope")
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr


def test_status_lists_the_mount_with_its_volume_cache_and_dirty_bytes(razorfs_mount: MountFactory, bucket: str) -> None:
    vol = razorfs_mount()
    (vol.mountpoint / "dirty.bin").write_bytes(b"y" * 100_000)

    listed = vol.cli("status", "--json")
    one = vol.cli("status", str(vol.mountpoint))

    assert listed.returncode == 0, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert entry["state"] == "mounted" and entry["volume"] == f"s3://{bucket}/vol/"
    assert entry["cache_limit_bytes"] > 0 and entry["dirty_bytes"] >= 0
    assert one.returncode == 0 and f"s3://{bucket}/vol/" in one.stdout and "DIRTY" in one.stdout


@pytest.mark.parametrize("command", ["flush", "umount"])
def test_flush_and_umount_show_dirty_data_draining_on_a_terminal(
    razorfs_mount: MountFactory, s3_server: S3Server, command: str
) -> None:
    with FaultProxy(s3_server.endpoint_url).start() as proxy:
        vol = razorfs_mount(endpoint_url=proxy.endpoint_url)
        # The file's upload is refused until the command shows its bar, so it has dirty bytes to
        # drain whatever the machine's speed. (Cutting S3 off after the write raced the upload: a
        # quick upload left nothing to drain and no bar.)
        for method in ("PUT", "POST"):
            proxy.add_rule(Fault.REFUSE, times=None, method=method, path_contains="big.bin")
        (vol.mountpoint / "big.bin").write_bytes(os.urandom(8 * MIB))

        def heal_once_the_bar_shows(output: str) -> None:
            if f"{command}:" in output:
                proxy.clear()

        code, output = _run_in_pty(vol.env, command, str(vol.mountpoint), on_output=heal_once_the_bar_shows)

    assert code == 0, output + vol.log[-2000:]
    assert f"{command}:" in output and "100%" in output and "8.00M/8.00M" in output, output
    if command == "flush":
        assert "flushed" in output


@pytest.mark.slow
def test_warmup_of_a_1_gib_tree_through_a_terminal_ends_fully_cached(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str
) -> None:
    """The issue's size: 64 files of 16 MiB (opt in with -m slow)."""
    total = _put_tree(s3_client, bucket, "vol", files=64, file_bytes=16 * MIB)
    assert total == 1024 * MIB
    vol = razorfs_mount(extra=("--cache-size", "2GiB"))

    code, output = _run_in_pty(vol.env, "warmup", str(vol.mountpoint), "tree", "--recursive", timeout_s=240)

    assert code == 0, output + vol.log[-2000:]
    assert "64/64 files" in output and "1.00G/1.00G" in output and "warmed 64 file(s), 1.0GiB" in output, output
    code, after = _check(vol, "tree")
    assert code == 0 and after["percent_cached"] == 100.0 and after["bytes_cached"] == total
