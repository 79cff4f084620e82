"""A mount daemon process started before a volume needs it. Importing the daemon's code (trio,
pyfuse3, boto3, the cache and fs layers) is most of what a fresh `razorfs mount` spends before it
mounts, so the plugin keeps one spare process that has done that and waits on its stdin for one
request: the volume's `razorfs` arguments, its credentials and its log file. It then runs
`razorfs mount` in that same process and is, from then on, an ordinary mount daemon: its own
session, recorded by pid and start time, outliving the plugin, re-adopted like any other.

A spare that was never used exits when its stdin closes (the plugin stopped or died)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MODULE = "razorfs.csi.spare_daemon"
SPARE_NICENESS = 10


class SpareDaemons:
    """The plugin's side: at most one spare waiting; `take` hands it a volume."""

    def __init__(self, cache_root: Path, log_path: Path) -> None:
        self.cache_root = cache_root
        self.log_path = log_path
        self._spare: subprocess.Popen[bytes] | None = None
        # Only root may give the process its priority back once it is a daemon.
        self._niced = os.geteuid() == 0

    def replenish(self, base_env: dict[str, str]) -> None:
        """Starts a spare unless one is waiting. Cheap for the caller (fork + exec); the spare's
        imports run in the new process, at a lower CPU priority when we can raise it back later
        (root), so they do not slow down the daemon that is starting right now."""
        if self._spare is not None and self._spare.poll() is None:
            return
        self._spare = None
        # The cache root in the command line names the spare as this plugin's, like its daemons.
        argv = [sys.executable, "-m", MODULE, "--cache-root", str(self.cache_root)]
        if self._niced:
            argv += ["--nice", str(SPARE_NICENESS)]
        try:
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            with open(log_fd, "ab") as spare_log:
                self._spare = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=spare_log,
                    stderr=subprocess.STDOUT,
                    env=base_env,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            log.warning("could not start a spare mount daemon (stages start fresh ones): %s", exc)

    def take(self, argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes] | None:
        """Hands the waiting spare its volume; None when there is none alive (start a fresh one)."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        request = {"argv": argv, "env": env, "log_path": str(log_path)}
        try:
            # A few KiB at most: fits the pipe buffer, so this never blocks the event loop.
            spare.stdin.write(json.dumps(request).encode() + b"\n")
            spare.stdin.close()
        except OSError as exc:  # it died just now
            log.warning("spare mount daemon %d gone before use: %s", spare.pid, exc)
            with contextlib.suppress(OSError):
                spare.kill()
            return None
        if self._niced:
            # A daemon now (its imports may not be done): back to our priority, before it starts
            # any thread (threads inherit it).
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, spare.pid, os.getpriority(os.PRIO_PROCESS, 0))
        return spare

    def close(self) -> None:
        """Ends a waiting spare (it holds nothing) and reaps it, so the plugin leaves no process
        behind but its daemons. Were the plugin killed instead, the spare exits on its own when
        it finds its stdin closed."""
        spare, self._spare = self._spare, None
        if spare is None:
            return
        with contextlib.suppress(OSError):
            spare.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            spare.wait(timeout=5)
        if spare.stdin is not None:
            with contextlib.suppress(OSError):
                spare.stdin.close()


# --- the spare process --------------------------------------------------------------------------


def _preload() -> None:
    """What `razorfs mount` would import first thing, so a request finds it in memory."""
    import razorfs.cli
    import razorfs.mount.commands
    import razorfs.mount.daemon
    import razorfs.store.s3  # noqa: F401


def _become(request: dict[str, object]) -> int:
    from razorfs import cli

    log_fd = os.open(str(request["log_path"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    env, raw_argv = request["env"], request["argv"]
    assert isinstance(env, dict) and isinstance(raw_argv, list)
    os.environ.update({str(k): str(v) for k, v in env.items()})
    argv = [str(a) for a in raw_argv]
    sys.argv = ["razorfs", *argv]
    return cli.main(argv)


def main() -> int:
    if "--nice" in sys.argv:
        os.nice(int(sys.argv[sys.argv.index("--nice") + 1]))
    _preload()
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0  # the plugin went away before it needed us
    return _become(json.loads(line))


if __name__ == "__main__":
    sys.exit(main())
