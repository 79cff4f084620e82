"""A client of RazorFS's control socket (`<cache-dir>/control.sock`, one JSON object per line)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class ControlError(RuntimeError):
    """The daemon answered `{"ok": false}` or the socket closed before the final line."""


def control_request(sock_path: Path, request: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    """Send one request and return its final reply line (progress lines are skipped)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(sock_path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        buffer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ControlError(f"control socket closed before replying to {request['op']!r}")
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.strip():
                    continue
                reply: dict[str, Any] = json.loads(line)
                if "ok" not in reply:
                    continue
                if not reply["ok"]:
                    raise ControlError(f"{request['op']}: {reply.get('error')}")
                return reply


def read_stats(sock_path: Path) -> dict[str, Any]:
    stats: dict[str, Any] = control_request(sock_path, {"op": "stats"})["stats"]
    return stats
