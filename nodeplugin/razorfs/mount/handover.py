"""The FUSE session handover, both ends of it.

The node plugin is privileged: it opens /dev/fuse, mounts it at the volume's path and then hands
the open descriptor to a mount daemon that waits on a unix socket (`serve --handover-socket`),
together with the daemon's `razorfs mount` arguments and its credentials. The daemon serves the
descriptor (libfuse takes a mountpoint of the form /dev/fd/N as an already mounted session) and
needs no privilege at all, so it can run in its own unprivileged pod that outlives the plugin.

One message each way on one connection:
- plugin -> daemon: one JSON object `{"argv": [...], "env": {...}}`
  terminated by a newline, the FUSE descriptor riding along in SCM_RIGHTS;
- daemon -> plugin: `{"ok": true}` once the daemon serves the session, or
  `{"ok": false, "error": "<one line>"}` when it cannot (bad arguments, bucket refused...).

Credentials travel only in `env`, never in argv, a pod spec or a log line. A connection that
closes before a whole message arrives is not a handover: the daemon goes on waiting."""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from razorfs.mount.control import bind_private, socket_address

HANDOVER_SOCKET_NAME = "handover.sock"
SERVE_COMMAND = "serve"
HANDOVER_SOCKET_FLAG = "--handover-socket"
MAX_MESSAGE_BYTES = 1024 * 1024
_CONNECT_POLL_S = 0.05


class HandoverError(Exception):
    """The daemon refused the session (its one-line reason) or went away before answering."""


class HandoverUnavailable(HandoverError):
    """No daemon waits on the socket (not started yet, or busy serving another session)."""


@dataclass(frozen=True)
class Handover:
    argv: list[str]  # `mount URL MOUNTPOINT --cache-dir ...`: paths as the daemon sees them
    env: dict[str, str] = field(default_factory=dict)  # credentials and nothing else secret

    def encode(self) -> bytes:
        return json.dumps({"argv": self.argv, "env": self.env}).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Handover:
        data = json.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("argv"), list):
            raise ValueError("a handover message needs an argv list")
        env = data.get("env") or {}
        return cls([str(a) for a in data["argv"]], {str(k): str(v) for k, v in env.items()})


# --- the plugin's end ---------------------------------------------------------------------------


def offer(
    socket_path: Path, handover: Handover, fuse_fd: int, connect_timeout_s: float, ready_timeout_s: float
) -> None:
    """Hands `fuse_fd` and `handover` to the daemon waiting at `socket_path` and returns once it
    serves the session. Blocking: call it from a thread. Raises HandoverUnavailable when nobody
    accepted within `connect_timeout_s`, HandoverError when the daemon refused or died."""
    sock = _connect(socket_path, connect_timeout_s)
    with sock:
        try:
            sock.sendmsg([handover.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fuse_fd]))])
        except OSError as err:
            raise HandoverUnavailable(f"the mount daemon at {socket_path} went away: {err.strerror}") from None
        sock.settimeout(ready_timeout_s)
        try:
            reply = _read_line(sock)
        except TimeoutError:
            raise HandoverError(f"the mount daemon did not serve its session within {ready_timeout_s:.0f}s") from None
        except OSError as err:
            raise HandoverError(f"the mount daemon went away before it served: {err.strerror}") from None
    if not reply:
        raise HandoverError("the mount daemon exited before it served its session")
    answer = json.loads(reply)
    if not answer.get("ok"):
        raise HandoverError(str(answer.get("error") or "the mount daemon refused its session"))


def _connect(socket_path: Path, timeout_s: float) -> socket.socket:
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_address(socket_path) as address:
                sock.connect(address)
            return sock
        except (FileNotFoundError, ConnectionRefusedError) as err:
            sock.close()
            last = err
        except OSError:
            sock.close()
            raise
        if time.monotonic() >= deadline:
            reason = last.strerror if last else "timed out"
            raise HandoverUnavailable(f"no mount daemon waits at {socket_path} after {timeout_s:.0f}s: {reason}")
        time.sleep(_CONNECT_POLL_S)


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_MESSAGE_BYTES:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.strip()


# --- the daemon's end ---------------------------------------------------------------------------


@dataclass
class Session:
    """A FUSE session handed to this daemon: its descriptor, its request, and the connection the
    answer goes back on (`served()` or `refused()`, once)."""

    handover: Handover
    fuse_fd: int
    connection: socket.socket
    answered: bool = False

    def served(self) -> None:
        self._answer({"ok": True})

    def refused(self, reason: str) -> None:
        self._answer({"ok": False, "error": reason})

    def _answer(self, reply: dict[str, Any]) -> None:
        if self.answered:
            return
        self.answered = True
        with contextlib.suppress(OSError):  # the plugin may have given up and gone
            self.connection.sendall(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(OSError):
            self.connection.close()


def wait_for_session(socket_path: Path) -> Session:
    """Listens at `socket_path` (owner-only) until one whole handover arrives; the socket file is
    removed before returning, so nobody else can connect to a daemon that is already busy."""
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # left by a previous daemon of this pod
    with socket_address(socket_path) as address:
        listener = bind_private(address)
    try:
        listener.listen(4)
        while True:
            connection, _ = listener.accept()
            session = _receive(connection)
            if session is not None:
                return session
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()


def _receive(connection: socket.socket) -> Session | None:
    fds: list[int] = []
    data = b""
    connection.settimeout(30.0)
    try:
        while not data.endswith(b"\n") and len(data) < MAX_MESSAGE_BYTES:
            chunk, ancdata, _, _ = connection.recvmsg(65536, socket.CMSG_SPACE(array.array("i").itemsize * 4))
            fds += _descriptors(ancdata)
            if not chunk:
                break
            data += chunk
        handover = Handover.decode(data) if data.endswith(b"\n") else None
    except (OSError, ValueError):
        handover = None
    if handover is None or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        if handover is not None:
            Session(handover, -1, connection).refused("a handover carries exactly one FUSE descriptor")
        else:
            connection.close()
        return None
    connection.settimeout(None)
    return Session(handover, fds[0], connection)


def _descriptors(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
            fds += list(received)
    return fds
