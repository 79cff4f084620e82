"""The pre-started mount daemon process (razorfs.csi.spare_daemon): it runs the `razorfs` command
it is handed with the volume's environment and log file, and a spare never used goes away with
its plugin. The plugin tests in this folder stage every volume through it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from razorfs import __version__
from razorfs.csi.daemon import DaemonProcess
from razorfs.csi.spare_daemon import SpareDaemons


def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int | None:
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def test_a_spare_runs_the_razorfs_command_it_is_handed_into_the_volume_log(tmp_path: Path) -> None:
    spares = SpareDaemons(tmp_path / "cache", tmp_path / "spare.log")
    spares.replenish(DaemonProcess.base_environment())
    volume_log = tmp_path / "daemon.log"
    proc = spares.take(["--version"], {"RAZORFS_LOG_LEVEL": "DEBUG"}, volume_log)
    assert proc is not None
    assert _wait_exit(proc) == 0
    assert f"razorfs {__version__}" in volume_log.read_text()
    assert spares.take(["--version"], {}, volume_log) is None, "a spare serves one volume only"


def test_a_spare_never_used_exits_when_its_plugin_goes_away(tmp_path: Path) -> None:
    spares = SpareDaemons(tmp_path / "cache", tmp_path / "spare.log")
    spares.replenish(DaemonProcess.base_environment())
    proc = spares._spare
    assert proc is not None and proc.poll() is None and proc.stdin is not None
    proc.stdin.close()  # what the plugin's death does: the write end of the spare's stdin closes
    assert _wait_exit(proc) == 0


def test_a_stopping_plugin_ends_its_spare_before_it_exits(tmp_path: Path) -> None:
    spares = SpareDaemons(tmp_path / "cache", tmp_path / "spare.log")
    spares.replenish(DaemonProcess.base_environment())
    proc = spares._spare
    assert proc is not None
    spares.close()
    assert proc.poll() is not None, "gone (and reaped) when close() returns"
