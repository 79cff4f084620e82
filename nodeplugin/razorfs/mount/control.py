"""The control socket (`<cache-dir>/control.sock`): one JSON object per line each way, as
docs/mount-daemon-contract.md says. `ControlServer` runs in the daemon's trio loop; `request`
is the blocking client the CLI (and anyone else) uses. Socket paths longer than sun_path allows
are reached through /proc/self/fd/N of the directory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

CONTROL_SOCKET_NAME = "control.sock"


class ControlOp:
    """The control socket's requests (docs/mount-daemon-contract.md): the one list both ends use."""

    STATS = "stats"
    FLUSH = "flush"
    SHUTDOWN = "shutdown"
    METRICS = "metrics"
    CREDENTIALS = "credentials"
    WARM = "warm"
    CACHED = "cached"
MAX_REQUEST_BYTES = 1024 * 1024
WARM_PATH_MAX_BYTES = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_SUN_PATH_MAX = 100

# A handler gets the request and yields reply lines; the last one has "ok".
Handler = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]


def warm_path_problem(path: str) -> str | None:
    """Why `path` cannot be warmed, or None. A warm path is relative to the volume root ("" is
    the whole volume): never absolute, never with a `..` segment, no control characters. The
    node plugin checks it before asking, the daemon again before reading."""
    if len(path.encode()) > WARM_PATH_MAX_BYTES:
        return f"warm path longer than {WARM_PATH_MAX_BYTES} bytes"
    if _CONTROL_CHARS.search(path):
        return "warm path contains control characters"
    if path.startswith("/"):
        return f"warm path {path!r} is absolute: paths are relative to the volume root"
    if ".." in path.split("/"):
        return f"warm path {path!r} contains a '..' segment"
    return None


class ControlUnavailable(Exception):
    """Nothing answers on the control socket (daemon gone or not started yet)."""


@contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """A unix socket path that fits in sun_path (108 bytes): the path itself, or the socket reached
    through its directory's /proc/self/fd entry, so deep cache dirs work too."""
    if len(str(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    dir_fd = os.open(path.parent, os.O_PATH)
    try:
        yield f"/proc/self/fd/{dir_fd}/{path.name}"
    finally:
        os.close(dir_fd)


def bind_private(path: str) -> socket.socket:
    """A unix stream socket bound at `path`, its file created 0600 (owner only) in one step:
    bind() makes the file with the process umask, so the umask is tightened around the call (a
    chmod after bind would leave a window in which anyone could connect). The bind is synchronous
    (unix sockets do not block), so no other task creates a file under the changed umask."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(previous)
    return sock


class ControlServer:
    def __init__(self, socket_path: Path, handle: Handler) -> None:
        self.socket_path = socket_path
        self._handle = handle

    async def serve(
        self, task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.socket_path.unlink(missing_ok=True)
        with socket_address(self.socket_path) as bind_path:
            sock = trio.socket.from_stdlib_socket(bind_private(bind_path))
        sock.listen(16)
        listener = trio.SocketListener(sock)
        await trio.serve_listeners(self._serve_connection, [listener], task_status=task_status)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while True:
                while b"\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk or len(buffer) > MAX_REQUEST_BYTES:
                        return
                    buffer += chunk
                line, buffer = buffer.split(b"\n", 1)
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object")
                except ValueError as err:
                    await _send(stream, {"ok": False, "error": f"bad request: {err}"})
                    continue
                async for reply in self._handle(request):
                    await _send(stream, reply)


async def _send(stream: trio.SocketStream, reply: dict[str, Any]) -> None:
    # A client that went away does not undo the operation, which already ran.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(json.dumps(reply).encode() + b"\n")


def request(
    socket_path: Path, message: dict[str, Any], timeout_s: float | None = None
) -> Iterator[dict[str, Any]]:
    """Sends one request and yields its reply lines up to and including the final one."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        with socket_address(socket_path) as connect_path:
            sock.connect(connect_path)
    except OSError as err:
        sock.close()
        raise ControlUnavailable(f"no daemon answers on {socket_path}: {err.strerror or err}") from err
    with sock, sock.makefile("rb") as replies:
        sock.sendall(json.dumps(message).encode() + b"\n")
        for line in replies:
            reply = json.loads(line)
            yield reply
            if "ok" in reply:
                return
    raise ControlUnavailable(f"the daemon on {socket_path} closed the connection without a reply")


def request_final(socket_path: Path, message: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
    final: dict[str, Any] = {}
    for reply in request(socket_path, message, timeout_s):
        final = reply
    return final

