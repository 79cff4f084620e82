"""`razorfs status [MOUNTPOINT]`: every RazorFS mount of this host (as the mount registry knows
them) with its volume, cache use, dirty bytes and last error; a daemon that died or does not
answer is listed as such, and makes the exit code 1."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from razorfs.errors import UsageError
from razorfs.mount import registry
from razorfs.mount.control import ControlOp, ControlUnavailable, request_final
from razorfs.mount.progress import human_bytes

STATUS_TIMEOUT_S = 5.0


def register(subparsers: Any) -> None:
    status = subparsers.add_parser(
        "status",
        help="every RazorFS mount on this host: volume, cache use, dirty bytes, last error",
        description="List the RazorFS mounts of this host (or only MOUNTPOINT). Exit 1 if a daemon is dead "
        "or does not answer.",
    )
    status.add_argument("mountpoint", metavar="MOUNTPOINT", nargs="?")
    status.add_argument("--json", action="store_true", help="print a JSON list, one object per mount")
    status.set_defaults(run=run_status_command)


def mount_status(record: registry.MountRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"mountpoint": record.mountpoint, "pid": record.pid, "cache_dir": record.cache_dir}
    if not registry.pid_alive(record.pid):
        return {**entry, "state": "dead", "last_error": "the mount daemon is gone; mount again to replay its journal"}
    try:
        reply = request_final(Path(record.control_socket), {"op": ControlOp.STATS}, timeout_s=STATUS_TIMEOUT_S)
    except (ControlUnavailable, OSError, ValueError) as err:
        return {**entry, "state": "unresponsive", "last_error": str(err)}
    if not reply.get("ok"):
        return {**entry, "state": "unresponsive", "last_error": str(reply.get("error", ""))}
    stats = reply["stats"]
    keys = ("volume", "cached_bytes", "cache_limit_bytes", "dirty_bytes", "uploading_bytes", "dirty_files")
    return {**entry, "state": "mounted", **{k: stats.get(k) for k in keys}, "last_error": stats.get("last_error", "")}


def run_status_command(args: argparse.Namespace) -> int:
    if args.mountpoint is not None:
        record = registry.read_record(args.mountpoint)
        if record is None:
            raise UsageError(f"{args.mountpoint} is not a RazorFS mount (no running daemon for it)", exit_code=1)
        records = [record]
    else:
        records = registry.list_records()
    entries = [mount_status(r) for r in records]
    if args.json:
        print(json.dumps(entries, sort_keys=True))
    elif not entries:
        print("no RazorFS mounts on this host")
    else:
        _print_table(entries)
    return 0 if all(e["state"] == "mounted" for e in entries) else 1


def _print_table(entries: list[dict[str, Any]]) -> None:
    rows = [("MOUNTPOINT", "VOLUME", "STATE", "CACHE", "DIRTY", "LAST ERROR")]
    for e in entries:
        cache = dirty = "-"
        if e["state"] == "mounted":
            cache = f"{human_bytes(e['cached_bytes'])}/{human_bytes(e['cache_limit_bytes'])}"
            dirty = human_bytes(e["dirty_bytes"])
        rows.append((e["mountpoint"], e.get("volume") or "-", e["state"], cache, dirty, e["last_error"] or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
