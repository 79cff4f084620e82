"""`razorfs-node` flags: bad ones end in one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from razorfs.csi.main import DEFAULT_ADMIN_ADDRESS, main

_NODE = ["--endpoint", "unix:///tmp/c.sock", "--node-id", "n", "--state-dir", "/tmp/x"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--endpoint", "tcp://127.0.0.1:1", "--node-id", "n", "--state-dir", "/tmp/x"], "unix://"),
        (["--endpoint", "unix://relative.sock", "--node-id", "n", "--state-dir", "/tmp/x"], "absolute"),
        (["--endpoint", "unix:///tmp/c.sock", "--state-dir", "/tmp/x"], "--node-id"),
        (["--endpoint", "unix:///tmp/c.sock", "--node-id", "n"], "--state-dir"),
        (
            [
                "--endpoint",
                "unix:///tmp/c.sock",
                "--node-id",
                "n",
                "--state-dir",
                "/tmp/x",
                "--admin-address",
                "127.0.0.1:1",
            ],
            "token",
        ),
        (["--endpoint", "unix:///tmp/c.sock", "--mode", "everything"], "invalid choice"),
        (
            [*_NODE, "--admin-allowed-service-account", "razorfs-operator"],
            "NAMESPACE/NAME",
        ),
        (
            [*_NODE, "--admin-allowed-service-account", "ns/op", "--admin-token-file", "/dev/null"],
            "exclude each other",
        ),
    ],
)
def test_bad_flags_print_one_line_and_exit_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAZORFS_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("NODE_ID", raising=False)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


def test_empty_token_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    argv = [
        "--endpoint",
        "unix:///tmp/c.sock",
        "--node-id",
        "n",
        "--state-dir",
        str(tmp_path),
        "--admin-token-file",
        str(token),
    ]
    assert main(argv) == 2
    assert "empty" in capsys.readouterr().err


def test_default_admin_address_is_loopback() -> None:
    assert DEFAULT_ADMIN_ADDRESS.startswith("127.0.0.1:")
