"""A fault-injecting HTTP proxy in front of a real S3 server, on loopback.

Requests and responses are forwarded byte for byte (the client's Host header included, so SigV4
signatures made for the proxy's address verify upstream), except that `Expect: 100-continue`
(a header SigV4 never signs) is answered by the proxy itself. Tests change the faults at run time:

    proxy.add_rule(Fault.SLOWDOWN_503, times=2, method="PUT")   # the next 2 PUTs get 503 SlowDown
    proxy.set_chaos(0.3, seed=7)                                # 30% of requests fail at random
    proxy.partition(5.0)                                        # every connection reset for 5 s
    proxy.add_rule(Fault.STALL, times=3, delay_s=2.0)           # bodies pause 2 s halfway through
    proxy.add_rule(Fault.ERROR_200, header="x-amz-copy-source") # a copy "succeeds" with an error body
    proxy.add_rule(Fault.CORRUPT, times=2, method="GET")        # 2 GET bodies with bytes flipped
    proxy.add_rule(Fault.SLOW_LORIS, method="PUT", delay_s=3.0) # an upload read at a trickle, then 400
    rule = proxy.add_rule(Fault.DENIED_403, times=None); ...; proxy.remove_rule(rule)  # 403s for a while

Standalone: `python -m tests.realparts.faultproxy --upstream URL --port N [--chaos 0.1 --seed 1]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_READ_CHUNK_BYTES = 64 * 1024
_MAX_HEAD_BYTES = 64 * 1024


class Fault(enum.Enum):
    ERROR_500 = "500"  # 500 InternalError with an S3 XML body; the request never reaches upstream
    SLOWDOWN_503 = "503"  # 503 SlowDown with an S3 XML body; the request never reaches upstream
    DENIED_403 = "403"  # 403 AccessDenied with an S3 XML body (a bucket policy saying no)
    RESET = "reset"  # forwarded, then the connection is reset halfway through the response
    TRUNCATE = "truncate"  # forwarded, then half the response is sent and the connection closed
    LATENCY = "latency"  # forwarded, the response delayed by the rule's delay_s
    REFUSE = "refuse"  # the connection is reset before anything is forwarded
    STALL = "stall"  # forwarded, each body (request, then response) paused for delay_s halfway through
    ERROR_200 = "200-error"  # 200 OK whose body is an S3 InternalError (as Copy/CompleteMultipartUpload may
    # answer); the request never reaches upstream
    CORRUPT = "corrupt"  # forwarded, a few bytes of a 2xx response body flipped (Content-Length unchanged)
    SLOW_LORIS = "slow-loris"  # the request body read at a trickle for delay_s; if it is not all in by
    # then, 400 RequestTimeout (what S3 answers a client that stops sending) and the connection closed


_ERROR_REPLIES = {
    Fault.ERROR_500: (500, "Internal Server Error", "InternalError"),
    Fault.SLOWDOWN_503: (503, "Slow Down", "SlowDown"),
    Fault.DENIED_403: (403, "Forbidden", "AccessDenied"),
}
RANDOM_FAULTS = (Fault.ERROR_500, Fault.SLOWDOWN_503, Fault.RESET, Fault.TRUNCATE)


@dataclass
class Rule:
    fault: Fault
    times: int | None = 1  # None: every matching request until removed
    method: str | None = None  # e.g. "GET"; None matches any
    path_contains: str | None = None  # substring of the request target (URL-decoded)
    delay_s: float = 0.0  # for LATENCY and STALL
    header: str | None = None  # only requests carrying this header (e.g. "x-amz-copy-source")

    def matches(self, method: str, target: str, headers: _Head | None = None) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.header is not None and (headers is None or headers.get(self.header.lower()) is None):
            return False
        return self.path_contains is None or self.path_contains in target


@dataclass
class _Head:
    first_line: str
    headers: list[tuple[str, str]]
    raw: bytes

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


@dataclass
class ProxyStats:
    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)


class _Drop(Exception):
    """Stop serving this client connection (it was reset or closed on purpose)."""


class FaultProxy:
    """Runs an asyncio proxy on its own thread; every public method is thread-safe."""

    def __init__(self, upstream_url: str, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None):
        """With `tls` the proxy serves HTTPS (to test CA bundles); upstream stays plain HTTP."""
        self._tls = tls
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream_url!r}")
        self.upstream = (parsed.hostname, parsed.port)
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._chaos_p = 0.0
        self._chaos_kinds: Sequence[Fault] = RANDOM_FAULTS
        self._rng = random.Random(0)
        self._partition_until = 0.0
        self.stats = ProxyStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.port = 0

    # -- control (from tests) -------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._bind[0]}:{self.port}"

    def add_rule(
        self,
        fault: Fault,
        times: int | None = 1,
        method: str | None = None,
        path_contains: str | None = None,
        delay_s: float = 0.0,
        header: str | None = None,
    ) -> Rule:
        rule = Rule(fault, times, method, path_contains, delay_s, header)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        """Switches a rule off (a `times=None` rule runs until this)."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def set_chaos(self, probability: float, seed: int = 0, kinds: Sequence[Fault] = RANDOM_FAULTS) -> None:
        """Each request (not matched by a rule) fails with probability `probability` with a fault
        drawn from `kinds`; `seed` makes the sequence of decisions repeatable."""
        with self._lock:
            self._chaos_p = probability
            self._chaos_kinds = tuple(kinds)
            self._rng = random.Random(seed)

    def partition(self, seconds: float) -> None:
        """Every new request and connection is reset for `seconds` from now."""
        with self._lock:
            self._partition_until = time.monotonic() + seconds

    def heal(self) -> None:
        with self._lock:
            self._partition_until = 0.0

    def clear(self) -> None:
        """No rules, no chaos, no partition."""
        with self._lock:
            self._rules.clear()
            self._chaos_p = 0.0
            self._partition_until = 0.0

    def faults_injected(self) -> int:
        with self._lock:
            return sum(self.stats.faults.values())

    def _choose_fault(self, method: str, target: str, head: _Head | None = None) -> Rule | None:
        with self._lock:
            self.stats.requests += 1
            self.stats.by_method[method] += 1
            chosen: Rule | None = None
            if time.monotonic() < self._partition_until:
                chosen = Rule(Fault.REFUSE)
            else:
                for rule in self._rules:
                    if rule.matches(method, target, head):
                        chosen = rule
                        if rule.times is not None:
                            rule.times -= 1
                            if rule.times <= 0:
                                self._rules.remove(rule)
                        break
                if chosen is None and self._chaos_p > 0 and self._rng.random() < self._chaos_p:
                    chosen = Rule(self._rng.choice(list(self._chaos_kinds)))
            if chosen is not None:
                self.stats.faults[chosen.fault.value] += 1
            return chosen

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        if not self.port:
            raise RuntimeError("fault proxy did not start within 10 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._serve_client, self._bind[0], self._bind[1], reuse_address=True, ssl=self._tls
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            # Cancel connection handlers still running so the loop closes cleanly.
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------------

    async def _serve_client(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                head = await _read_head(client_r)
                if head is None:
                    return
                upstream = await self._serve_request(head, client_r, client_w, upstream)
        except (_Drop, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels, after the loop stopped; ending quietly keeps asyncio's
            # stream callback from logging the cancellation as an error.
            pass
        finally:
            if upstream is not None:
                upstream[1].close()
            client_w.close()

    async def _serve_request(
        self,
        head: _Head,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        method, target = head.first_line.split(" ")[:2]
        rule = self._choose_fault(method, urllib.parse.unquote(target), head)
        fault = rule.fault if rule else None
        if fault is Fault.REFUSE:
            _reset(client_w)
            raise _Drop
        expects_continue = (head.get("expect") or "").lower() == "100-continue"
        if fault in _ERROR_REPLIES:
            # Read a body the client already sends (closing on unread data would turn the answer
            # into a reset), but not one it holds back waiting for 100 Continue.
            if not expects_continue:
                await _read_body(client_r, head, is_response=False, request_method=None)
            status, reason, code = _ERROR_REPLIES[fault]
            client_w.write(_s3_error(status, reason, code, target))
            await client_w.drain()
            raise _Drop  # Connection: close, so the unread body does not matter
        if fault is Fault.ERROR_200:
            if not expects_continue:
                await _read_body(client_r, head, is_response=False, request_method=None)
            client_w.write(_s3_error(200, "OK", "InternalError", target))
            await client_w.drain()
            raise _Drop  # Connection: close, so the unread body does not matter
        if expects_continue:
            client_w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await client_w.drain()
        if fault is Fault.SLOW_LORIS and rule is not None:
            body = await _read_body_slowly(client_r, head, rule.delay_s)
            if body is None:
                client_w.write(_s3_error(400, "Bad Request", "RequestTimeout", target))
                await client_w.drain()
                raise _Drop
        else:
            body = await _read_body(client_r, head, is_response=False, request_method=None)
        request_raw = _without_expect(head) if expects_continue else head.raw
        reused = upstream is not None and not upstream[0].at_eof()
        if not reused:
            if upstream is not None:
                upstream[1].close()
            upstream = await asyncio.open_connection(*self.upstream)
        assert upstream is not None
        stall_s = rule.delay_s if fault is Fault.STALL and rule is not None else 0.0
        resp_head = await _exchange(upstream, request_raw, body, stall_s)
        if resp_head is None and reused:
            # The upstream closed an idle keep-alive connection as we wrote: not an injected
            # fault, so send again on a fresh connection instead of failing the client.
            upstream[1].close()
            upstream = await asyncio.open_connection(*self.upstream)
            resp_head = await _exchange(upstream, request_raw, body, stall_s)
        if resp_head is None:
            _reset(client_w)
            raise _Drop
        up_r = upstream[0]
        resp_body = await _read_body(up_r, resp_head, is_response=True, request_method=method)
        if fault is Fault.LATENCY and rule is not None:
            await asyncio.sleep(rule.delay_s)
        if fault in (Fault.RESET, Fault.TRUNCATE):
            # Cut the body in half; a response without a body (PUT, HEAD) is cut inside its status
            # line, or the "fault" would reach the client as a complete reply (http.client takes
            # headers cut short by EOF as complete).
            whole = resp_head.raw + resp_body
            cut = len(resp_head.raw) + len(resp_body) // 2 if resp_body else len(resp_head.first_line) // 2
            client_w.write(whole[:cut])
            await client_w.drain()
            if fault is Fault.RESET:
                _reset(client_w)
            raise _Drop
        if fault is Fault.CORRUPT:
            resp_body = _corrupted(resp_head, resp_body)
        if stall_s and resp_body:  # the reader gets half the body, then nothing for a while
            client_w.write(resp_head.raw + resp_body[: len(resp_body) // 2])
            await client_w.drain()
            await asyncio.sleep(stall_s)
            client_w.write(resp_body[len(resp_body) // 2 :])
        else:
            client_w.write(resp_head.raw + resp_body)
        await client_w.drain()
        closing = (resp_head.get("connection") or "").lower() == "close" or (
            head.get("connection") or ""
        ).lower() == "close"
        if closing or _reads_until_close(resp_head, method):
            raise _Drop
        return upstream


async def _exchange(
    upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter], head: bytes, body: bytes, stall_s: float = 0.0
) -> _Head | None:
    """Sends a request (with `stall_s`, half its body, a pause, the rest: a slow upload as the
    server sees it); the response head, or None if the connection closed first."""
    try:
        if stall_s and body:
            upstream[1].write(head + body[: len(body) // 2])
            await upstream[1].drain()
            await asyncio.sleep(stall_s)
            upstream[1].write(body[len(body) // 2 :])
        else:
            upstream[1].write(head + body)
        await upstream[1].drain()
        return await _read_head(upstream[0])
    except ConnectionError:
        return None


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    if len(raw) > _MAX_HEAD_BYTES:
        raise _Drop
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return _Head(lines[0], headers, raw)


def _reads_until_close(head: _Head, request_method: str | None) -> bool:
    status = int(head.first_line.split(" ")[1])
    no_body = request_method == "HEAD" or status in (204, 304) or 100 <= status < 200
    return (
        not no_body
        and head.get("content-length") is None
        and (head.get("transfer-encoding") or "").lower() != "chunked"
    )


async def _read_body(reader: asyncio.StreamReader, head: _Head, is_response: bool, request_method: str | None) -> bytes:
    """The raw body bytes as framed on the wire (chunk framing kept), so forwarding is exact."""
    if is_response:
        status = int(head.first_line.split(" ")[1])
        if request_method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
    if (head.get("transfer-encoding") or "").lower() == "chunked":
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            out += size_line
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers, ending with an empty line
                    line = await reader.readuntil(b"\r\n")
                    out += line
                    if line == b"\r\n":
                        return bytes(out)
            out += await reader.readexactly(size + 2)
    length = head.get("content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if is_response:
        return await reader.read()  # framed by the connection's end
    return b""


_TRICKLE_BYTES = 1024
_TRICKLE_PAUSE_S = 0.05


async def _read_body_slowly(reader: asyncio.StreamReader, head: _Head, window_s: float) -> bytes | None:
    """A request body with a Content-Length, read _TRICKLE_BYTES at a time with pauses (the
    client's sends soon block on full socket buffers) for at most `window_s`; None if it was not
    all in by then. A chunked body is not read at all: None after `window_s`."""
    length = int(head.get("content-length") or 0)
    if (head.get("transfer-encoding") or "").lower() == "chunked":
        await asyncio.sleep(window_s)
        return None
    out = bytearray()
    deadline = time.monotonic() + window_s
    while len(out) < length:
        if time.monotonic() >= deadline:
            return None
        out += await reader.readexactly(min(_TRICKLE_BYTES, length - len(out)))
        await asyncio.sleep(_TRICKLE_PAUSE_S)
    return bytes(out)


def _corrupted(head: _Head, body: bytes) -> bytes:
    """`body` with 3 bytes inverted in its middle (same length, so the framing still holds); a
    non-2xx reply, an empty or chunked body is left alone (its framing would break instead)."""
    status = int(head.first_line.split(" ")[1])
    if not 200 <= status < 300 or not body or head.get("content-length") is None:
        return body
    damaged = bytearray(body)
    for offset in {len(body) // 2, len(body) // 3, len(body) - 1}:
        damaged[offset] ^= 0xFF
    return bytes(damaged)


def _without_expect(head: _Head) -> bytes:
    lines = head.raw.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(b"expect:")]
    return b"\r\n".join(kept)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than a FIN: a 'connection reset by peer'."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _s3_error(status: int, reason: str, code: str, target: str) -> bytes:
    resource = urllib.parse.urlsplit(target).path
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>injected by the fault proxy</Message>"
        f"<Resource>{resource}</Resource><RequestId>faultproxy</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body


def self_signed_tls(workdir: Path, host: str = "127.0.0.1") -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for `host`, and the certificate's
    path (the CA bundle a client must be given). Needs the `openssl` command."""
    cert, key = workdir / "proxy-cert.pem", workdir / "proxy-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fault-injecting HTTP proxy in front of an S3 server")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8333")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chaos", type=float, default=0.0, help="probability of a random fault")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream, args.host, args.port).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop() runs in the finally below
    if args.chaos:
        proxy.set_chaos(args.chaos, args.seed)
    print(f"fault proxy on {proxy.endpoint_url} -> {args.upstream} (chaos {args.chaos})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
