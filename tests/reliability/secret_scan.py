"""A pytest plugin (registered by tests/conftest.py) that fails the whole session if the test S3
secret key shows up where it must never be: in any file under the session's basetemp (daemon,
operator, node plugin and S3 server logs, state dirs) or in any test's captured output or failure
text. The credential stores the secret legitimately lives in (the S3 server's identity file,
the node plugin's 0600 credentials file, etcd's data holding Kubernetes Secrets, the S3 server's
object data) are the only exceptions."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realparts.s3server import TEST_SECRET_KEY

SECRET = TEST_SECRET_KEY.encode()
_CHUNK_BYTES = 4 * 1024 * 1024
# Where the secret is stored on purpose: SeaweedFS's identity config, the node plugin's per-volume
# credentials (mode 0600, needed to restart a dead mount daemon), etcd's data (Secrets), SeaweedFS's
# data dir (objects and filer metadata).
_EXEMPT_FILE_NAMES = frozenset({"s3.json", "credentials.json"})
_EXEMPT_DIR_NAMES = frozenset({"weed-data", "member"})

_leaks_in_reports: list[str] = []


def file_contains_secret(path: Path, secret: bytes = SECRET) -> bool:
    overlap = len(secret) - 1
    tail = b""
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                if secret in tail + chunk:
                    return True
                tail = chunk[-overlap:]
    except OSError:
        return False
    return False


def _mountpoints_under(root: Path) -> set[str]:
    """Live mounts are skipped without being stat'ed: a dead FUSE mount would hang the walk."""
    prefix = os.path.realpath(root) + "/"
    with open("/proc/self/mountinfo") as mounts:
        points = {line.split()[4].replace("\\040", " ") for line in mounts}
    return {p for p in points if p.startswith(prefix)}


def files_to_scan(root: Path) -> Iterator[Path]:
    skip = _mountpoints_under(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _EXEMPT_DIR_NAMES and os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = Path(dirpath, name)
            if name not in _EXEMPT_FILE_NAMES and path.is_file() and not path.is_symlink():
                yield path


def find_leaks(root: Path, secret: bytes = SECRET) -> list[Path]:
    return [path for path in files_to_scan(root) if file_contains_secret(path, secret)]


def loose_modes(root: Path) -> list[tuple[Path, str]]:
    """Everything under `root` that a group or other user could read, write or enter (any of the
    mode bits 0o077), with its mode in octal: the node's state, cache and credential files must
    be private from creation. Live mounts are skipped (their modes are the volume's business)."""
    skip = _mountpoints_under(root)
    loose = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                loose.append((path, oct(stat.S_IMODE(mode))))
    if root.lstat().st_mode & 0o077:
        loose.append((root, oct(stat.S_IMODE(root.lstat().st_mode))))
    return loose


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    texts = [report.longreprtext, *(content for _, content in report.sections)]
    if any(TEST_SECRET_KEY in text for text in texts):
        _leaks_in_reports.append(f"{report.nodeid} ({report.when})")


# trylast: after the runner's own sessionfinish has torn down the session fixtures, so the logs the
# S3 server, operator and node plugins write while stopping are scanned too.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp: Path | None = getattr(factory, "_basetemp", None)  # None: no test made a temp dir
    leaked_files = find_leaks(basetemp) if basetemp is not None and basetemp.exists() else []
    if not leaked_files and not _leaks_in_reports:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["SECRET LEAK: the test S3 secret key appears in:"]
    lines += [f"  file {path}" for path in leaked_files]
    lines += [f"  captured output of {nodeid}" for nodeid in _leaks_in_reports]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
