"""`razorfs flush` and `razorfs umount` wait for dirty data to reach S3: the request runs on its
own connection while this module polls `stats` on another and shows the dirty bytes going down."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from razorfs.mount.control import ControlOp, ControlUnavailable, request_final
from razorfs.mount.progress import TransferProgress

STATS_POLL_S = 0.5


def request_while_draining(socket_path: Path, message: dict[str, Any], label: str, show: bool = True) -> dict[str, Any]:
    """Sends `message` (flush or shutdown) and returns its final reply; meanwhile, while anything
    is dirty, shows how much of it has been uploaded. Raises ControlUnavailable like
    request_final."""
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["reply"] = request_final(socket_path, message)
        except ControlUnavailable as err:
            outcome["error"] = err

    worker = threading.Thread(target=ask, name=f"razorfs-{label}", daemon=True)
    worker.start()
    progress: TransferProgress | None = None
    peak = 0
    while worker.is_alive():
        worker.join(STATS_POLL_S)
        if not worker.is_alive() or not show:
            continue
        dirty = _dirty_bytes(socket_path)
        if dirty is None:
            continue
        peak = max(peak, dirty)
        if peak and progress is None:
            progress = TransferProgress(label)
        if progress is not None:
            progress.update(peak - dirty, peak)
    if progress is not None:
        progress.update(peak, peak)
        progress.close()
    if "error" in outcome:
        raise outcome["error"]
    reply: dict[str, Any] = outcome["reply"]
    return reply


def _dirty_bytes(socket_path: Path) -> int | None:
    try:
        reply = request_final(socket_path, {"op": ControlOp.STATS}, timeout_s=2)
    except (ControlUnavailable, OSError, ValueError):
        return None  # the daemon is shutting down: its socket is going away
    stats = reply.get("stats") or {}
    return int(stats.get("dirty_bytes", 0)) if reply.get("ok") else None
