"""Unit tests of the counting proxy's request counting: the incremental HTTP/1.1 request parser
fed at awkward boundaries, the S3 operation kinds, and the relay staying byte-for-byte transparent."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import pytest

from tests.bench.counting_proxy import CountingProxy, RequestStream, classify


def _request(method: str, target: str, body: bytes = b"", *headers: str) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1:8333", *headers]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _chunked(method: str, target: str, chunks: list[bytes]) -> bytes:
    head = _request(method, target, b"", "Transfer-Encoding: chunked")
    body = b"".join(f"{len(c):x};ext=1\r\n".encode() + c + b"\r\n" for c in chunks)
    return head + body + b"0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n"


def _count(pieces: list[bytes]) -> Counter[str]:
    seen: Counter[str] = Counter()
    stream = RequestStream(lambda kind: seen.update([kind]))
    for piece in pieces:
        stream.feed(piece)
    assert not stream.broken
    return seen


def _split_everywhere(data: bytes) -> list[list[bytes]]:
    """`data` in two pieces at every position, and one byte at a time."""
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [[data[i : i + 1] for i in range(len(data))]]


TRICKY_BODY = b"\r\n\r\nGET /bucket/key HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("method", "target", "kind"),
    [
        ("HEAD", "/bucket/dir/file", "HEAD"),
        ("GET", "/bucket/dir/file", "GET"),
        ("GET", "/bucket/dir/", "GET"),  # a directory marker object is an object
        ("GET", "/bucket?list-type=2&prefix=dir%2F&delimiter=%2F", "LIST"),
        ("GET", "/bucket/?prefix=dir%2F&delimiter=%2F&max-keys=1000", "LIST"),
        ("GET", "/bucket", "LIST"),
        ("GET", "/bucket/?uploads", "LIST"),
        ("GET", "/bucket/?location", "OTHER"),
        ("GET", "/", "OTHER"),
        ("GET", "http://127.0.0.1:8333/bucket/key", "GET"),
        ("PUT", "/bucket/key", "PUT"),
        ("PUT", "/bucket/key?partNumber=2&uploadId=abc", "PUT"),
        ("POST", "/bucket/key?uploads", "POST"),
        ("POST", "/bucket?delete", "POST"),
        ("DELETE", "/bucket/key", "DELETE"),
        ("OPTIONS", "/bucket/key", "OTHER"),
    ],
)
def test_s3_operations_are_classified_by_method_and_target(method: str, target: str, kind: str) -> None:
    assert classify(method, target) == kind


def test_a_head_split_anywhere_is_one_request() -> None:
    data = _request("HEAD", "/bucket/a") + _request("GET", "/bucket?list-type=2&prefix=a")
    for pieces in _split_everywhere(data):
        assert _count(pieces) == Counter({"HEAD": 1, "LIST": 1}), pieces


def test_pipelined_requests_in_one_piece_are_each_counted() -> None:
    data = _request("PUT", "/bucket/a", b"x" * 10) + _request("GET", "/bucket/a") + _request("DELETE", "/bucket/a")
    assert _count([data]) == Counter({"PUT": 1, "GET": 1, "DELETE": 1})


def test_a_body_that_looks_like_a_request_is_skipped() -> None:
    data = _request("PUT", "/bucket/a", TRICKY_BODY) + _request("HEAD", "/bucket/a")
    for pieces in _split_everywhere(data):
        assert _count(pieces) == Counter({"PUT": 1, "HEAD": 1}), pieces


def test_chunked_bodies_are_skipped_by_their_chunk_sizes() -> None:
    data = _chunked("PUT", "/bucket/a", [TRICKY_BODY, b"y" * 300, b"\r\n"]) + _request("POST", "/bucket/a?uploadId=1")
    for pieces in _split_everywhere(data):
        assert _count(pieces) == Counter({"PUT": 1, "POST": 1}), pieces


def test_a_body_sent_after_100_continue_comes_later_on_the_same_stream() -> None:
    head = _request("PUT", "/bucket/a", b"", "Expect: 100-continue", f"Content-Length: {len(TRICKY_BODY)}")
    assert _count([head, TRICKY_BODY, _request("GET", "/bucket/a")]) == Counter({"PUT": 1, "GET": 1})


def test_a_big_body_is_skipped_without_being_kept() -> None:
    seen: Counter[str] = Counter()
    stream = RequestStream(lambda kind: seen.update([kind]))
    body = b"\r\n\r\n" * (1 << 18)  # 1 MiB of separators, fed in 64 KiB pieces
    data = _request("PUT", "/bucket/big", body) + _request("HEAD", "/bucket/big")
    for i in range(0, len(data), 1 << 16):
        stream.feed(data[i : i + (1 << 16)])
        assert len(stream._pending) < 1024
    assert seen == Counter({"PUT": 1, "HEAD": 1})


def test_a_stream_that_is_not_http_stops_being_counted() -> None:
    seen: Counter[str] = Counter()
    stream = RequestStream(lambda kind: seen.update([kind]))
    stream.feed(b"\x16\x03\x01 not http at all\r\n\r\n")
    stream.feed(_request("GET", "/bucket/a"))
    assert stream.broken and not seen


def test_the_proxy_relays_bytes_unchanged_and_counts_by_kind() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def sink() -> None:
        conn, _ = server.accept()
        with conn:
            while len(received) < len(sent) and (data := conn.recv(65536)):
                received.extend(data)
            conn.sendall(b"done")

    sent = (
        _request("PUT", "/bucket/a", TRICKY_BODY)
        + _chunked("PUT", "/bucket/b?partNumber=1&uploadId=u", [b"z" * 70000])
        + _request("GET", "/bucket?list-type=2")
        + _request("HEAD", "/bucket/a")
        + _request("GET", "/bucket/a")
        + _request("POST", "/bucket?delete", b"<Delete/>")
    )
    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    with CountingProxy(f"http://127.0.0.1:{server.getsockname()[1]}") as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            for i in range(0, len(sent), 777):
                client.sendall(sent[i : i + 777])
            assert client.recv(16) == b"done"
        thread.join(timeout=10)
        deadline = time.monotonic() + 5
        while sum(proxy.requests_by_kind().values()) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert bytes(received) == sent
        counts = proxy.requests_by_kind()
        assert {k: v for k, v in counts.items() if v} == {"PUT": 2, "LIST": 1, "HEAD": 1, "GET": 1, "POST": 1}
        assert proxy.unparsed_streams == 0
        proxy.reset()
        assert not any(proxy.requests_by_kind().values())
    server.close()
