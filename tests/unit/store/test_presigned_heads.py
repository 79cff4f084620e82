"""HEADs sent on a kept-alive `http.client` connection (store.s3_head), against a small HTTP server
on loopback that answers as an S3 server would, or breaks connections as a server may: a reply is
botocore's reply, a connection the server closed while idle is replaced without an error, a
refusal is the ClientError botocore raises, a redirect or region mismatch goes to botocore, and a
broken connection's error names neither the URL nor the credentials it carried; and a request
waiting out its backoff tries again at once when told to (`retry_now`)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.exceptions
import pytest

from razorfs.store.errors import ObjectNotFound, StoreUnavailable
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import S3Settings

ACCESS_KEY = "AKIDPRESIGNTEST0001"
SECRET_KEY = "presign-test-secret-key-0001"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    status = 200
    presigned_status = 0  # when set: the status of presigned requests (query-string signature)
    close_after_reply = False  # closes each connection after replying (without saying so)
    paths: list[str]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_HEAD(self) -> None:
        self.server.paths.append(self.path)
        status = self.server.status
        if self.server.presigned_status and "X-Amz-Signature=" in self.path:
            status = self.server.presigned_status
        self.send_response(status)
        if status == 200:
            self.send_header("Content-Length", "42")
            self.send_header("ETag", '"abc123"')
            self.send_header("Last-Modified", "Sat, 28 Nov 2026 21:41:08 GMT")
            self.send_header("x-amz-meta-Mode", "33188")
        else:
            self.send_header("Content-Length", "0")
        self.end_headers()
        if self.server.close_after_reply:
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.paths = []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _store(endpoint: str) -> S3Store:
    settings = S3Settings(
        bucket="presign-bucket",
        endpoint_url=endpoint,
        region="us-east-1",
        force_path_style=True,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02),
    )
    return S3Store(settings)


def test_a_head_is_a_presigned_request_and_reads_like_botocores(server: _Server) -> None:
    store = _store(f"http://127.0.0.1:{server.server_address[1]}")
    info = store.head("dir/some key")
    assert (info.size, info.etag, info.metadata) == (42, "abc123", {"mode": "33188"})
    assert info.last_modified == 1795902068.0
    path = server.paths[0]
    assert path.startswith("/presign-bucket/dir/some%20key?")
    assert f"X-Amz-Credential={ACCESS_KEY}" in path and "X-Amz-Signature=" in path


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error(server: _Server) -> None:
    server.close_after_reply = True
    store = _store(f"http://127.0.0.1:{server.server_address[1]}")
    for _ in range(3):
        assert store.head("k").size == 42
    counted = store.counters.snapshot()
    assert counted.retries == 0 and counted.errors == 0
    assert len(server.paths) == 3


def test_a_refusal_is_botocores_client_error_translated_once(server: _Server) -> None:
    server.status = 404
    store = _store(f"http://127.0.0.1:{server.server_address[1]}")
    with pytest.raises(ObjectNotFound):
        store.head("missing")
    server.status = 403
    with pytest.raises(Exception, match="403") as refused:
        store.head("private")
    assert not isinstance(refused.value, botocore.exceptions.ClientError)  # typed at the boundary


def test_a_region_mismatch_is_handed_to_botocore_which_follows_it(server: _Server) -> None:
    server.presigned_status = 400  # what AWS answers a request signed for another region
    store = _store(f"http://127.0.0.1:{server.server_address[1]}")
    assert store.head("k").size == 42
    presigned, signed = server.paths
    assert "X-Amz-Signature=" in presigned and signed == "/presign-bucket/k"  # botocore's own request


def test_a_broken_connection_names_neither_the_url_nor_the_credentials() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    listener.settimeout(0.05)
    stop = threading.Event()

    def accept_and_drop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            conn.close()  # no reply at all

    thread = threading.Thread(target=accept_and_drop, daemon=True)
    thread.start()
    try:
        store = _store(f"http://127.0.0.1:{port}")
        with pytest.raises(StoreUnavailable) as failed:
            store.head("k")
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
    message = str(failed.value)
    assert "RemoteDisconnected" in message and "head s3://presign-bucket/k" in message
    for secret in (ACCESS_KEY, SECRET_KEY, "X-Amz-", "Signature"):
        assert secret not in message


class _LongestDelays(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b  # every backoff sleeps its whole ceiling


def test_retry_now_cuts_a_backoff_short(server: _Server) -> None:
    server.status = 500
    settings = S3Settings(
        bucket="presign-bucket",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region="us-east-1",
        force_path_style=True,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        retry=RetryPolicy(max_attempts=3, base_delay_s=30.0, max_delay_s=30.0, rng=_LongestDelays()),
    )
    store = S3Store(settings)
    answers: list[int] = []
    asking = threading.Thread(target=lambda: answers.append(store.head("k").size), daemon=True)
    asking.start()
    deadline = time.monotonic() + 5
    while not server.paths and time.monotonic() < deadline:
        time.sleep(0.01)
    server.status = 200  # S3 is back; the request sleeps 30 s before its next attempt
    time.sleep(0.1)
    store.retry_now()
    asking.join(timeout=5)
    assert answers == [42]
