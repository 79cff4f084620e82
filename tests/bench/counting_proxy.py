"""A TCP relay in front of the S3 server that counts the bytes S3 sends back.

It measures what each system really fetched (readahead, whole-chunk downloads), independent of
what the system says about itself. Counts are wire bytes, HTTP headers included, so they slightly
overstate the payload; that errs against whoever makes many small requests."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit

BUFFER_BYTES = 256 * 1024


class CountingProxy:
    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._down_bytes = 0
        self._up_bytes = 0
        self._connections = 0
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="counting-proxy", daemon=True)
        self._accept_thread.start()

    @property
    def bytes_from_s3(self) -> int:
        with self._lock:
            return self._down_bytes

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def reset(self) -> None:
        with self._lock:
            self._down_bytes = 0
            self._up_bytes = 0
            self._connections = 0

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += 1
                self._sockets.update((client, upstream))
            for src, dst, downstream in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(target=self._pump, args=(src, dst, downstream), daemon=True)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while True:
                data = src.recv(BUFFER_BYTES)
                if not data:
                    break
                with self._lock:
                    if downstream:
                        self._down_bytes += len(data)
                    else:
                        self._up_bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass  # the peer hung up; closing both sides below ends the other pump too
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._sockets.discard(src)
                self._sockets.discard(dst)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes the accept() blocked in the other thread
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._accept_thread.join(timeout=5)

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
