"""`DaemonLogRelay`: the mount daemons' log lines on the node plugin's own stderr, so
`kubectl logs` of the plugin shows them. A daemon writes to its volume's `daemon.log` (a file,
because the daemon outlives the plugin process, whose stderr it cannot keep); the relay reads
what is new every RELAY_INTERVAL_S and copies it out: JSON lines as they are (they carry their
volume and node), text lines prefixed with the volume. Once a file passes DAEMON_LOG_MAX_BYTES
and everything in it was relayed, it is truncated (the daemon appends, so it goes on writing at
the new end): host files stay bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

RELAY_INTERVAL_S = 0.5
DAEMON_LOG_MAX_BYTES = 8 * 1024 * 1024
_READ_MAX_BYTES = 1024 * 1024


class DaemonLogRelay:
    def __init__(self, logs: Callable[[], dict[str, Path]], out: BinaryIO | None = None) -> None:
        self._logs = logs
        self._out = out if out is not None else sys.stderr.buffer
        self._offsets: dict[Path, int] = {}
        self._started = False

    def relay_once(self) -> None:
        current = self._logs()
        for volume_id, path in current.items():
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if path not in self._offsets:
                # Lines written before this plugin process started went to its predecessor's logs.
                self._offsets[path] = size if not self._started else 0
            self._relay_file(volume_id, path, size)
        for gone in set(self._offsets) - set(current.values()):
            del self._offsets[gone]
        self._started = True

    def _relay_file(self, volume_id: str, path: Path, size: int) -> None:
        offset = self._offsets[path]
        if size < offset:  # truncated by someone else: start over
            offset = 0
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read(_READ_MAX_BYTES)
            complete = chunk[: chunk.rfind(b"\n") + 1]
            for line in complete.splitlines(keepends=True):
                self._out.write(line if line.startswith(b"{") else f"volume {volume_id}: ".encode() + line)
            self._out.flush()
            offset += len(complete)
        if offset >= DAEMON_LOG_MAX_BYTES and os.path.getsize(path) == offset:
            os.truncate(path, 0)
            offset = 0
        self._offsets[path] = offset

    async def run(self) -> None:
        while True:
            try:
                self.relay_once()
            except OSError as err:  # a full or broken stderr must not stop the plugin
                log.warning("relaying daemon logs failed: %s", err)
            await asyncio.sleep(RELAY_INTERVAL_S)
