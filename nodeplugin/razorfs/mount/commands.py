"""`razorfs mount | umount | flush | stats | status | warmup`: the command-line face of the mount
daemon (status and warmup live in their own modules).

`mount` without --foreground starts the daemon as a detached child (`--foreground` of itself,
output in `<cache-dir>/daemon.log`) and returns 0 once the mount is ready and the control socket
answers; otherwise it prints the daemon's one-line reason and exits 1. The other commands find
the daemon of MOUNTPOINT through the registry (see razorfs.mount.registry)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from razorfs.errors import UsageError
from razorfs.log_format import configure_logging
from razorfs.mount import handover, registry, status_command, warmup_command
from razorfs.mount.control import CONTROL_SOCKET_NAME, ControlOp, ControlUnavailable, request_final
from razorfs.mount.drain import request_while_draining
from razorfs.mount.options import MountOptions, add_mount_arguments, mount_options_from_args, parse_mount_argv
from razorfs.store.errors import StoreError
from razorfs.store.location import InvalidS3Url

READY_TIMEOUT_S = 60.0
DAEMON_LOG_NAME = "daemon.log"


def register(subparsers: Any) -> None:
    mount = subparsers.add_parser(
        "mount",
        help="mount a bucket (prefix) at MOUNTPOINT",
        description="Mount s3://BUCKET[/PREFIX] at MOUNTPOINT with a local cache. Returns once mounted.",
    )
    add_mount_arguments(mount)
    mount.set_defaults(run=run_mount_command)

    umount = subparsers.add_parser("umount", help="flush every dirty file to S3 (showing progress), then unmount")
    umount.add_argument("mountpoint", metavar="MOUNTPOINT")
    umount.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    umount.add_argument("--quiet", action="store_true", help="no progress while dirty data drains")
    umount.set_defaults(run=run_umount_command)

    flush = subparsers.add_parser("flush", help="wait until nothing is dirty (everything is in S3), showing progress")
    flush.add_argument("mountpoint", metavar="MOUNTPOINT")
    flush.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    flush.add_argument("--quiet", action="store_true", help="no progress while dirty data drains")
    flush.set_defaults(run=run_flush_command)

    stats = subparsers.add_parser("stats", help="cache and transfer statistics of a mount")
    stats.add_argument("mountpoint", metavar="MOUNTPOINT")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=run_stats_command)

    serve = subparsers.add_parser(
        handover.SERVE_COMMAND,
        help="wait for a FUSE session from the node plugin and serve it (what a mount pod runs)",
        description="Listen on a unix socket for one FUSE session handed over by the RazorFS node "
        "plugin (descriptor, mount arguments, credentials) and serve it until unmounted.",
    )
    serve.add_argument(handover.HANDOVER_SOCKET_FLAG, required=True, dest="handover_socket", metavar="PATH")
    serve.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)  # a spare waits at low priority
    serve.set_defaults(run=run_serve_command)

    status_command.register(subparsers)
    warmup_command.register(subparsers)


def run_serve_command(args: argparse.Namespace) -> int:
    if args.nice:
        os.nice(args.nice)
    # Imported before waiting, so a session (above all one handed to a spare) starts at once.
    from razorfs.mount.daemon import run_mount

    socket_path = Path(args.handover_socket)
    # A mount pod's daemon is its container's PID 1, for which the kernel ignores SIGTERM unless a
    # handler is set: without one, deleting a waiting pod would take its whole grace period.
    # Nothing is held yet, so stopping is simply exiting; once serving, the daemon's own handler
    # (flush, then exit) takes over.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    while True:
        session = handover.wait_for_session(socket_path)
        try:
            options = _session_options(session.handover)
            _configure_logging(options)
            return run_mount(options, session)
        except (UsageError, InvalidS3Url, StoreError, OSError) as err:
            # Refused before serving (the plugin has the reason): wait for the next attempt in
            # this process, rather than exit into a container restart back-off.
            reason = f"{type(err).__name__}: {err}" if isinstance(err, StoreError) else str(err)
            if not session.answered:  # never served: the descriptor is still ours to close
                with contextlib.suppress(OSError):
                    os.close(session.fuse_fd)
            session.refused(reason)
            print(f"razorfs serve: session refused: {reason}", file=sys.stderr, flush=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _session_options(request: handover.Handover) -> MountOptions:
    """The handed-over mount arguments, the environment replaced by the session's (a previous
    refused session's keys must not linger)."""
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        del os.environ[key]
    os.environ.update(request.env)
    return parse_mount_argv(request.argv)


def _configure_logging(options: MountOptions) -> None:
    configure_logging(
        "razorfs",
        os.environ.get("RAZORFS_LOG_LEVEL", "INFO"),
        options.log_format,
        volume=options.volume_label,
        node=options.node_name,
    )


def run_mount_command(args: argparse.Namespace) -> int:
    options = mount_options_from_args(args)
    if options.foreground:
        from razorfs.mount.daemon import run_mount

        _configure_logging(options)
        return run_mount(options)
    return _start_detached(args, options.cache_dir, options.mountpoint)


def _start_detached(args: argparse.Namespace, cache_dir: Path, mountpoint: Path) -> int:
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "razorfs.mount", *_child_argv(args), "--foreground"]
    log_path = cache_dir / DAEMON_LOG_NAME
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with open(log_fd, "ab") as log_file:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    socket_path = cache_dir / CONTROL_SOCKET_NAME
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise UsageError(_last_line(log_path) or f"the mount daemon exited with code {code}", exit_code=1)
        record = registry.read_record(mountpoint)
        if record is not None and record.pid == child.pid:
            try:
                if request_final(socket_path, {"op": ControlOp.STATS}, timeout_s=5).get("ok"):
                    return 0
            except ControlUnavailable:
                pass
        time.sleep(0.05)
    child.terminate()
    raise UsageError(f"the mount daemon was not ready after {READY_TIMEOUT_S:.0f}s (see {log_path})", exit_code=1)


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The same mount request for the child; secrets stay in the environment, never in argv."""
    argv = ["mount", args.url, args.mountpoint, "--cache-dir", args.cache_dir]
    valued = {
        "--endpoint-url": args.endpoint_url,
        "--region": args.region,
        "--ca-bundle": args.ca_bundle,
        "--sse": args.sse,
        "--sse-kms-key-id": args.sse_kms_key_id,
        "--cache-size": args.cache_size,
        "--cache-mode": args.cache_mode,
        "--metadata-ttl": args.metadata_ttl,
        "--fsync-timeout": args.fsync_timeout,
        "--uid": args.uid,
        "--gid": args.gid,
        "--file-mode": args.file_mode,
        "--dir-mode": args.dir_mode,
        "--metrics-port": args.metrics_port,
        "--local-store": args.local_store,
        "--credential-source": args.credential_source,
        "--role-arn": args.role_arn,
        "--web-identity-token-file": args.web_identity_token_file,
        "--sts-endpoint": args.sts_endpoint,
        "--role-session-name": args.role_session_name,
        "--log-format": args.log_format,
        "--volume-name": args.volume_name or None,
        "--node-name": args.node_name or None,
    }
    for flag, value in valued.items():
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in {
        "--force-path-style": args.force_path_style,
        "--read-only": args.read_only,
        "--allow-other": args.allow_other,
    }.items():
        if on:
            argv.append(flag)
    return argv


def _last_line(log_path: Path) -> str:
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    if not lines:
        return ""
    last = lines[-1]
    # "razorfs mount: <reason>" from the child's CLI is already the one line we want.
    return last.split("razorfs mount: ", 1)[-1]


def _ask(record: registry.MountRecord, message: dict[str, Any], progress_label: str | None = None) -> dict[str, Any]:
    """The daemon's final reply to `message`; with `progress_label`, dirty bytes draining are shown
    meanwhile."""
    socket_path = Path(record.control_socket)
    try:
        if progress_label is None:
            reply = request_final(socket_path, message, timeout_s=None)
        else:
            reply = request_while_draining(socket_path, message, progress_label)
    except ControlUnavailable as err:
        raise UsageError(str(err), exit_code=1) from err
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the daemon refused")), exit_code=1)
    return reply


def run_umount_command(args: argparse.Namespace) -> int:
    record = registry.live_record(args.mountpoint)
    message: dict[str, Any] = {"op": ControlOp.SHUTDOWN}
    if args.timeout is not None:
        message["timeout_s"] = args.timeout
    _ask(record, message, None if args.quiet else "umount")
    deadline = time.monotonic() + (args.timeout or 60.0)
    while registry.pid_alive(record.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if registry.pid_alive(record.pid):
        raise UsageError(f"daemon {record.pid} flushed but did not exit", exit_code=1)
    return 0


def run_flush_command(args: argparse.Namespace) -> int:
    record = registry.live_record(args.mountpoint)
    message: dict[str, Any] = {"op": ControlOp.FLUSH}
    if args.timeout is not None:
        message["timeout_s"] = args.timeout
    reply = _ask(record, message, None if args.quiet else "flush")
    print(f"flushed {reply.get('flushed_bytes', 0)} bytes")
    return 0


def run_stats_command(args: argparse.Namespace) -> int:
    stats = _ask(registry.live_record(args.mountpoint), {"op": ControlOp.STATS})["stats"]
    if args.json:
        print(json.dumps(stats, sort_keys=True))
        return 0
    width = max(len(name) for name in stats)
    for name, value in stats.items():
        print(f"{name:<{width}}  {value}")
    return 0
