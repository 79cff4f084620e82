"""A TCP relay in front of the S3 server that counts the bytes S3 sends back and the requests
each system sends, by S3 operation kind.

It measures what each system really fetched (readahead, whole-chunk downloads) and asked for,
independent of what the system says about itself. Byte counts are wire bytes, HTTP headers
included, so they slightly overstate the payload; that errs against whoever makes many small
requests. Requests are counted by parsing a copy of the client's byte stream as HTTP/1.1 (request
line and headers only; bodies are skipped by their length, never scanned): what is forwarded is
never changed."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

BUFFER_BYTES = 256 * 1024

# The kinds requests are counted by. LIST is a GET of a bucket (ListObjects v1/v2, ListObjectVersions,
# ListMultipartUploads); PUT covers uploads, upload parts and copies; POST covers multipart create and
# complete and DeleteObjects; OTHER is whatever else (bucket subresources such as ?location, ListBuckets).
KINDS: tuple[str, ...] = ("GET", "PUT", "HEAD", "LIST", "POST", "DELETE", "OTHER")
# Query parameters of the bucket-level GETs that list something; any other one names a subresource.
_LIST_PARAMS = frozenset(
    {"list-type", "prefix", "delimiter", "marker", "max-keys", "continuation-token", "start-after",
     "encoding-type", "fetch-owner", "uploads", "versions", "key-marker", "version-id-marker",
     "upload-id-marker", "max-uploads", "x-id"}
)  # fmt: skip
MAX_HEADER_BYTES = 64 * 1024  # a longer request head is not HTTP we understand: stop counting that stream


def classify(method: str, target: str) -> str:
    """The kind of one S3 request, from its method and request target (path-style addressing)."""
    method = method.upper()
    if method in ("HEAD", "PUT", "POST", "DELETE"):
        return method
    if method != "GET":
        return "OTHER"
    path, _, query = target.partition("?")
    if "://" in path:  # absolute-form target: drop scheme and authority
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    params = {part.partition("=")[0] for part in query.split("&") if part}
    if "list-type" in params:
        return "LIST"
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "OTHER"  # ListBuckets
    if not key:
        return "LIST" if params <= _LIST_PARAMS else "OTHER"
    return "GET"


_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(5)


class RequestStream:
    """Counts the HTTP/1.1 requests of one client-to-server byte stream, fed in pieces of any size.

    Only request heads and chunk-size lines are looked at; bodies are skipped by arithmetic
    (Content-Length, or the chunk sizes of a chunked body). `Expect: 100-continue` needs nothing
    special: the body simply comes later on the same stream. A stream that stops making sense as
    HTTP is no longer counted (`broken`); the bytes themselves are never touched."""

    def __init__(self, on_request: Callable[[str], None]) -> None:
        self._on_request = on_request
        self._state = _HEAD
        self._pending = bytearray()  # the start of a head or line whose end has not arrived yet
        self._skip = 0  # body or chunk bytes (chunk data: its CRLF included) still to pass over
        self.broken = False

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        try:
            self._feed(data)
        except (ValueError, UnicodeDecodeError):
            self.broken = True
            self._pending.clear()

    def _feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._state in (_BODY, _CHUNK_DATA):
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                if self._skip == 0:
                    self._state = _HEAD if self._state == _BODY else _CHUNK_SIZE
                continue
            separator = b"\r\n\r\n" if self._state == _HEAD else b"\r\n"
            found, pos = self._take(data, pos, separator)
            if found is None:
                return
            if self._state == _HEAD:
                self._request(found)
            elif self._state == _CHUNK_SIZE:
                size = int(found.split(b";", 1)[0].strip(), 16)
                if size:
                    self._state, self._skip = _CHUNK_DATA, size + 2
                else:
                    self._state = _TRAILER
            elif not found:  # _TRAILER: the empty line ends the chunked body
                self._state = _HEAD

    def _take(self, data: bytes, pos: int, separator: bytes) -> tuple[bytes | None, int]:
        """(what comes before `separator`, the position after it), joining what is pending; or
        (None, end of data) with the rest kept pending."""
        tail = len(separator) - 1
        cut = -1
        if self._pending:  # the separator may straddle the previous piece and this one
            joint = bytes(self._pending[-tail:]) + data[pos : pos + tail]
            hit = joint.find(separator)
            if hit >= 0:
                cut = pos + hit + len(separator) - min(tail, len(self._pending))
        if cut < 0:
            hit = data.find(separator, pos)
            cut = -1 if hit < 0 else hit + len(separator)
        if cut < 0:
            if len(self._pending) + len(data) - pos > MAX_HEADER_BYTES:
                raise ValueError("request head too long")
            self._pending += data[pos:]
            return None, len(data)
        if self._pending:
            whole = bytes(self._pending) + data[pos:cut]
            self._pending.clear()
            return whole[: -len(separator)], cut
        return data[pos : cut - len(separator)], cut

    def _request(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        while lines and not lines[0]:
            lines.pop(0)  # empty lines before a request line are allowed
        if not lines:
            return
        method, target, version = lines[0].split(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1 request: {lines[0][:80]!r}")
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
        self._on_request(classify(method, target))
        if chunked:
            self._state = _CHUNK_SIZE
        elif length:
            self._state, self._skip = _BODY, length


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
        self._requests = dict.fromkeys(KINDS, 0)
        self._unparsed_streams = 0
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

    def requests_by_kind(self) -> dict[str, int]:
        """Requests sent through the proxy since the last reset(), by kind (every kind of KINDS)."""
        with self._lock:
            return dict(self._requests)

    @property
    def unparsed_streams(self) -> int:
        """Client streams that stopped parsing as HTTP/1.1 since the last reset(): their later
        requests are missing from the counts."""
        with self._lock:
            return self._unparsed_streams

    def reset(self, requests: bool = True) -> None:
        """Zeroes the byte and connection counts, and the request counts unless `requests` is False."""
        with self._lock:
            self._down_bytes = 0
            self._up_bytes = 0
            self._connections = 0
            if requests:
                self._requests = dict.fromkeys(KINDS, 0)
                self._unparsed_streams = 0

    def _count_request(self, kind: str) -> None:
        with self._lock:
            self._requests[kind] += 1

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
        requests = None if downstream else RequestStream(self._count_request)
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
                if requests is not None and not requests.broken:
                    requests.feed(data)  # the bytes already went out as they came in
                    if requests.broken:
                        with self._lock:
                            self._unparsed_streams += 1
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
