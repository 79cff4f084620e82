"""One mount daemon process: started in its own session (so it outlives the plugin), identified
by pid plus start time, probed for liveness and killed with its whole process group.

A daemon started by another plugin process is not our child: we cannot wait() for it, so
liveness comes from /proc (a zombie counts as dead)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from razorfs.csi.errors import DaemonFailed
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.state_store import DaemonIdentity

_POLL_S = 0.05


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses; fields after the last ')' don't.
    rest = text[text.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def identity_of(pid: int) -> DaemonIdentity | None:
    stat = _proc_stat(pid)
    return DaemonIdentity(pid, stat[1]) if stat else None


def is_alive(identity: DaemonIdentity) -> bool:
    stat = _proc_stat(identity.pid)
    return stat is not None and stat[1] == identity.start_ticks and stat[0] not in ("Z", "X")


class DaemonProcess:
    """Starts `argv` with credentials in its environment only; output goes to `log_path`."""

    # Children we started ourselves; reaped so they never linger as zombies.
    _children: dict[int, subprocess.Popen[bytes]] = {}
    _exit_codes: dict[int, int] = {}

    @staticmethod
    def base_environment() -> dict[str, str]:
        """The plugin's environment without any AWS setting (a daemon gets its volume's)."""
        return {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}

    @classmethod
    def start(cls, argv: list[str], env: dict[str, str], log_path: Path) -> DaemonIdentity:
        child_env = cls.base_environment()
        child_env.update(env)
        with open(open_private_log(log_path), "ab", closefd=True) as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
                close_fds=True,
            )
        return cls.track(proc)

    @classmethod
    def track(cls, proc: subprocess.Popen[bytes]) -> DaemonIdentity:
        """Records a daemon process we started (fresh or a spare put to work)."""
        cls._children[proc.pid] = proc
        identity = identity_of(proc.pid)
        if identity is None:
            proc.wait()
            raise DaemonFailed(f"mount daemon exited at once with {proc.returncode}")
        return identity

    @classmethod
    def reap(cls) -> None:
        for pid, proc in list(cls._children.items()):
            code = proc.poll()
            if code is not None:
                del cls._children[pid]
                cls._exit_codes[pid] = code

    @classmethod
    def exit_code(cls, pid: int) -> int | None:
        """The exit status of a daemon we started (None while it runs or if another plugin
        process started it)."""
        cls.reap()
        return cls._exit_codes.get(pid)


def explicit_environment(credentials: Credentials) -> dict[str, str]:
    """A daemon's environment additions for a volume signing with its Secret's keys. The daemon
    runs with --credential-source explicit and reads nothing else; pointing the AWS files at
    /dev/null and turning instance metadata off is a second fence around the default chain."""
    return {
        **credentials.environment(),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def node_identity_environment() -> dict[str, str]:
    """For `authentication: node` only: the plugin's own AWS settings (instance role, the node
    ServiceAccount's web identity), which boto3's default chain then uses."""
    return {key: value for key, value in os.environ.items() if key.startswith("AWS_")}


def open_private_log(log_path: Path) -> int:
    """The daemon log's descriptor, the file created 0600 (daemon errors may name paths and keys
    of a volume; they are nobody else's business)."""
    return os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def kill(identity: DaemonIdentity) -> None:
    """SIGKILLs the daemon's process group (the daemon leads its own session)."""
    if not is_alive(identity):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(identity.pid, signal.SIGKILL)


async def wait_exit(identity: DaemonIdentity, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        DaemonProcess.reap()
        if not is_alive(identity):
            return True
        await asyncio.sleep(_POLL_S)
    return False


def last_line(log_path: Path) -> str:
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1][:500] if lines else "(empty log)"
