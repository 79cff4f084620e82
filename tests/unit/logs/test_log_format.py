"""--log-format json: every line parses, with the stable field names, and no secret the process
holds in its environment reaches a line; the node plugin relays its daemons' log files."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from razorfs.csi import daemon_logs
from razorfs.csi.daemon_logs import DaemonLogRelay
from razorfs.csi.main import build_parser as node_parser
from razorfs.log_format import configure_logging
from razorfs.mount.commands import register
from razorfs_operator.main import build_parser as operator_parser

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """What the logging set up in the test wrote to stderr; root logging put back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield lambda: capsys.readouterr().err
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_parse_with_stable_field_names(stderr: Callable[[], str]) -> None:
    configure_logging("razorfs", "INFO", "json", volume="team-a/data", node="node-1")
    log = logging.getLogger("razorfs.fs.operations")
    log.warning("write failed", extra={"op": "write", "errno": 28, "duration": 0.012})
    log.info("plain")

    first, second = (json.loads(line) for line in stderr().splitlines())

    assert first["level"] == "WARNING" and first["logger"] == "razorfs.fs.operations"
    assert first["message"] == "write failed" and first["program"] == "razorfs"
    assert (first["volume"], first["node"]) == ("team-a/data", "node-1")
    assert (first["op"], first["errno"], first["duration"]) == ("write", 28, 0.012)
    assert first["time"][:2] == "20" and "op" not in second


def test_secrets_of_the_environment_never_reach_a_line(
    stderr: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    for log_format in ("json", "text"):
        configure_logging("razorfs-node", "INFO", log_format)
        logging.getLogger("razorfs.csi").error("request signed with %s failed", SECRET)
    written = stderr()
    assert SECRET not in written and written.count("***") == 2


def test_every_program_takes_log_format() -> None:
    import argparse

    mount = argparse.ArgumentParser()
    register(mount.add_subparsers(dest="command"))
    args = mount.parse_args(["mount", "s3://b/p", "/mnt", "--cache-dir", "/c", "--log-format", "json"])
    assert args.log_format == "json"
    assert node_parser().parse_args(["--endpoint", "unix:///x", "--log-format", "json"]).log_format == "json"
    assert operator_parser().parse_args(["--log-format", "json"]).log_format == "json"
    with pytest.raises(SystemExit):
        operator_parser().parse_args(["--log-format", "xml"])


def test_the_plugin_relays_new_daemon_lines_and_bounds_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.log"
    old.write_bytes(b"before the plugin started\n")
    out = io.BytesIO()
    logs = {"vol-old": old}
    relay = DaemonLogRelay(lambda: dict(logs), out)
    relay.relay_once()  # lines from before this plugin process are not repeated
    with old.open("ab") as f:
        f.write(b'{"message": "json as it is"}\nplain text\npartial')
    new = tmp_path / "new.log"
    new.write_bytes(b"first line of a new daemon\n")
    logs["vol-new"] = new
    relay.relay_once()
    assert out.getvalue().splitlines() == [
        b'{"message": "json as it is"}',
        b"volume vol-old: plain text",
        b"volume vol-new: first line of a new daemon",
    ]
    monkeypatch.setattr(daemon_logs, "DAEMON_LOG_MAX_BYTES", 10)
    with old.open("ab") as f:
        f.write(b" line\n")
    relay.relay_once()
    assert out.getvalue().splitlines()[-1] == b"volume vol-old: partial line"
    assert old.stat().st_size == 0  # everything relayed: truncated
