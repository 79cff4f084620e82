"""A pytest plugin (registered by tests/conftest.py) that fails the whole session if a test secret
shows up where it must never be: in any file under the session's basetemp (daemon, operator, node
plugin and S3 server logs, state dirs) or in any test's captured output or failure text. The
secrets are the test S3 secret key, the test session token, anything a test registers with
`register_secret` (e.g. ServiceAccount tokens), each also in its base64 forms (a Secret's `data`,
a Basic auth header). It also fails the session if a node plugin's state or cache dir holds
anything a group or other user could read (see `loose_modes`). The credential stores the secret
legitimately lives in (the S3 server's identity file, the node plugin's 0600 credentials file,
etcd's data holding Kubernetes Secrets, the S3 server's object data) are the only exceptions."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realparts.s3server import TEST_SECRET_KEY

SECRET = TEST_SECRET_KEY.encode()
# A session token tests may stage with (S3 servers that check it reject it; the scan must not care).
TEST_SESSION_TOKEN = "razorfs-test-session-token-Hx4Jm9Qe2Wd7Lr5T"
_registered: list[bytes] = [SECRET, TEST_SESSION_TOKEN.encode()]
_CHUNK_BYTES = 4 * 1024 * 1024
# Where the secret is stored on purpose: SeaweedFS's identity config, the node plugin's per-volume
# credentials (mode 0600, needed to restart a dead mount daemon) and ServiceAccount tokens (mode
# 0600, what an `authentication: pod` mount's daemon reads; razorfs.csi.mount_records.TOKEN_FILE_NAME),
# etcd's data (Secrets), SeaweedFS's data dir (objects and filer metadata).
_EXEMPT_FILE_NAMES = frozenset({"s3.json", "credentials.json", "serviceaccount-token"})
_EXEMPT_DIR_NAMES = frozenset({"weed-data", "member"})

_leaks_in_reports: list[str] = []


def register_secret(value: str) -> None:
    """Adds a value the session's files and outputs must never contain."""
    if value and value.encode() not in _registered:
        _registered.append(value.encode())


def base64_forms(secret: bytes) -> list[bytes]:
    """What `secret` looks like inside any base64 text, whatever bytes precede it: for each of the
    three alignments, the characters that depend on the secret alone (standard and URL-safe)."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret)
        # Skip the characters mixing the prefix in, and the last ones mixing in what follows.
        start = (offset * 8 + 5) // 6
        end = ((offset + len(secret)) * 8) // 6
        core = encoded[start:end]
        forms += [core, core.replace(b"+", b"-").replace(b"/", b"_")]
    return sorted(set(forms))


def forms_of(secret: bytes) -> list[bytes]:
    return [secret, *base64_forms(secret)]


def all_secret_forms() -> list[bytes]:
    return [form for secret in _registered for form in forms_of(secret)]


def file_contains_secret(path: Path, secret: bytes = SECRET) -> bool:
    return bool(file_contains_any(path, forms_of(secret)))


def file_contains_any(path: Path, needles: list[bytes]) -> list[bytes]:
    """The needles found in the file at `path` (read in chunks)."""
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    found: set[bytes] = set()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                window = tail + chunk
                found.update(n for n in needles if n in window)
                tail = window[-overlap:]
    except OSError:
        return []
    return sorted(found)


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


def find_leaks(root: Path, secret: bytes | None = None) -> list[Path]:
    """Files under `root` holding `secret` (default: every registered secret), plain or base64."""
    needles = forms_of(secret) if secret is not None else all_secret_forms()
    return [path for path in files_to_scan(root) if file_contains_any(path, needles)]


def node_dirs_with_loose_modes(root: Path) -> list[tuple[Path, str]]:
    """Group/other permission bits in the state and cache dirs of every node plugin test root
    (tests/integration/csi: `rzn*`) under `root`."""
    loose = []
    for plugin_root in root.glob("rzn*"):
        for name in ("state", "cache"):
            if (plugin_root / name).is_dir():
                loose += loose_modes(plugin_root / name)
    return loose


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
    needles = [form.decode() for form in all_secret_forms()]
    if any(needle in text for text in texts for needle in needles):
        _leaks_in_reports.append(f"{report.nodeid} ({report.when})")


# trylast: after the runner's own sessionfinish has torn down the session fixtures, so the logs the
# S3 server, operator and node plugins write while stopping are scanned too.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp: Path | None = getattr(factory, "_basetemp", None)  # None: no test made a temp dir
    exists = basetemp is not None and basetemp.exists()
    leaked_files = find_leaks(basetemp) if exists and basetemp is not None else []
    loose = node_dirs_with_loose_modes(basetemp) if exists and basetemp is not None else []
    if not leaked_files and not _leaks_in_reports and not loose:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = []
    if leaked_files or _leaks_in_reports:
        lines.append("SECRET LEAK: a test secret (plain or base64) appears in:")
    lines += [f"  file {path}" for path in leaked_files]
    lines += [f"  captured output of {nodeid}" for nodeid in _leaks_in_reports]
    if loose:
        lines.append("LOOSE MODES: node plugin files others could read:")
        lines += [f"  {path} {mode}" for path, mode in loose]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
