"""`razorfs warmup MOUNTPOINT [PATH...]`: reads files into the local cache ahead of use, with a
progress bar; `--check` only reports how much of the paths is cached (exit 3 when not all)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from razorfs.errors import UsageError
from razorfs.mount import registry
from razorfs.mount.control import ControlOp, ControlUnavailable, request, request_final, warm_path_problem
from razorfs.mount.progress import TransferProgress, human_bytes

EXIT_NOT_ALL_CACHED = 3


def register(subparsers: Any) -> None:
    warmup = subparsers.add_parser(
        "warmup",
        help="read files into the local cache ahead of use, or check how much is cached",
        description="Read PATHs (files or directories; default: the whole volume) of the RazorFS mount at "
        "MOUNTPOINT into its local cache. PATHs are inside the mount: absolute, or relative to MOUNTPOINT. "
        "Shows a progress bar (files, bytes, rate, ETA) on a terminal, one line per second otherwise.",
    )
    warmup.add_argument("mountpoint", metavar="MOUNTPOINT")
    warmup.add_argument("paths", metavar="PATH", nargs="*")
    warmup.add_argument("-r", "--recursive", action="store_true", help="directories: every file below, not only theirs")
    warmup.add_argument("--background", action="store_true", help="start the warm-up in the daemon and return")
    warmup.add_argument(
        "--check", action="store_true", help=f"only report how much is cached (exit {EXIT_NOT_ALL_CACHED} if not all)"
    )
    warmup.add_argument("--json", action="store_true", help="print the result as one JSON object, no progress")
    warmup.set_defaults(run=run_warmup_command)


def volume_paths(mountpoint: str, paths: list[str]) -> list[str]:
    """PATH arguments as paths relative to the volume root ("" is the root)."""
    root = registry.real_mountpoint(mountpoint)
    result = []
    for raw in paths or [""]:
        absolute = os.path.normpath(raw if os.path.isabs(raw) else os.path.join(root, raw))
        relative = os.path.relpath(absolute, root)
        if relative == ".":
            relative = ""
        if relative == ".." or relative.startswith("../"):
            raise UsageError(f"{raw} is not inside the mount {mountpoint}")
        problem = warm_path_problem(relative)
        if problem is not None:
            raise UsageError(problem)
        result.append(relative)
    return result


def run_warmup_command(args: argparse.Namespace) -> int:
    record = registry.live_record(args.mountpoint)
    socket_path = Path(record.control_socket)
    message: dict[str, Any] = {"paths": volume_paths(args.mountpoint, args.paths), "recursive": args.recursive}
    if args.check:
        return _check(socket_path, message, args.json)
    message.update(op="warm", background=args.background)
    try:
        final = _follow_warm(socket_path, message, show=not args.json)
    except ControlUnavailable as err:
        raise UsageError(str(err), exit_code=1) from err
    if not final.get("ok"):
        raise UsageError(str(final.get("error", "the daemon refused")), exit_code=1)
    if args.json:
        print(json.dumps(final, sort_keys=True))
    elif args.background:
        print(
            f"warming {final.get('files_total', 0)} file(s), {human_bytes(final.get('bytes_total', 0))} in the "
            f"background; `razorfs warmup --check {args.mountpoint}` shows how far it got"
        )
    else:
        print(f"warmed {final.get('files_total', 0)} file(s), {human_bytes(final.get('bytes_total', 0))}")
    return 0


def _follow_warm(socket_path: Path, message: dict[str, Any], show: bool) -> dict[str, Any]:
    progress = TransferProgress("warmup") if show and not message["background"] else None
    last: dict[str, Any] = {}
    final: dict[str, Any] = {}
    for reply in request(socket_path, message):
        if "progress" in reply:
            last = reply["progress"]
            if progress is not None:
                progress.update(last["bytes_done"], last["bytes_total"], last["files_done"], last["files_total"])
        else:
            final = reply
    if progress is not None:
        progress.close()
    if final.get("ok") and last:
        final.setdefault("files_total", last["files_total"])
        final.setdefault("bytes_total", last["bytes_total"])
    return final


def _check(socket_path: Path, message: dict[str, Any], as_json: bool) -> int:
    try:
        reply = request_final(socket_path, {**message, "op": ControlOp.CACHED})
    except ControlUnavailable as err:
        raise UsageError(str(err), exit_code=1) from err
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the daemon refused")), exit_code=1)
    cached = reply["cached"]
    if as_json:
        print(json.dumps(cached, sort_keys=True))
    else:
        print(
            f"{cached['percent_cached']:g}% cached: {cached['files_cached']}/{cached['files_total']} files, "
            f"{human_bytes(cached['bytes_cached'])}/{human_bytes(cached['bytes_total'])}"
        )
    return 0 if cached["bytes_cached"] >= cached["bytes_total"] else EXIT_NOT_ALL_CACHED
