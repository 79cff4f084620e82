"""`PresignedHeads`: HEAD requests at a third of botocore's CPU.

A cold `ls -l` sends one HEAD per entry (mode, owner and times live in each object's user
metadata), and botocore spends about 1.7 ms of CPU on each: its event hooks, serializer, signer,
urllib3 and parser, all under the GIL the FUSE loop needs. Here boto3 still builds and signs the
request (`generate_presigned_url`: the client's endpoint, addressing style, region and current
credentials, rotated or refreshed ones included), and a keep-alive `http.client` connection per
thread sends it: about 0.6 ms of CPU in all (measured 2026-11-28 against SeaweedFS on loopback).

What comes back is shaped as botocore's `head_object` reply, and a refusal as the `ClientError`
botocore raises for a HEAD (no body: the code is the HTTP status), so `s3_errors.translate` and the
store's retries treat both paths alike; a redirect or a 400 (AWS says "wrong region" so) is
handed to botocore's own `head_object`, which follows it. A connection failure becomes a builtin
`ConnectionError` naming the failure but never the URL (a presigned URL carries the key id, and with temporary
credentials the session token). Used only where nothing sits between us and the endpoint that
botocore would honour and we would not: no proxy in the environment."""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions

from razorfs.store.s3_clients import parse_s3_timestamp
from razorfs.store.s3_settings import S3Settings

META_PREFIX = "x-amz-meta-"
# How long a presigned HEAD stays valid: it is sent at once; this only covers clock steps.
PRESIGN_EXPIRES_S = 900
# Replies botocore acts on by itself (region redirects), where its own request takes over.
_BOTOCORE_FOLLOWS = frozenset({301, 302, 307, 400})
# Failures of a connection that sat idle in the cache, before any reply: the server closed it.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def usable() -> bool:
    """Whether HEADs may skip botocore's transport: not when the environment names a proxy
    (botocore would send through it)."""
    return not any(scheme != "no" for scheme in urllib.request.getproxies())


class PresignedHeads:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._local = threading.local()  # each thread its own connections: (scheme, host, port) -> conn
        self._tls: ssl.SSLContext | None = None  # built at the first https connection

    @staticmethod
    def _tls_context(settings: S3Settings) -> ssl.SSLContext:
        if not settings.verify_tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=str(settings.ca_bundle) if settings.ca_bundle else None)

    def head_object(self, client: Any, bucket: str, key: str) -> dict[str, Any]:
        """`client.head_object(Bucket=bucket, Key=key)`'s reply (the fields the store reads)."""
        url = client.generate_presigned_url(
            "head_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_EXPIRES_S
        )
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        where = (parts.scheme, parts.hostname or "", parts.port)
        for attempt in (1, 2):
            conn, reused = self._connection(where)
            try:
                reply = self._send(conn, target)
                if reply.status in _BOTOCORE_FOLLOWS:
                    # A redirect or a region mismatch (AWS, a bucket in another region than
                    # configured): botocore follows these itself; ask it.
                    return dict(client.head_object(Bucket=bucket, Key=key))
                return _as_head_reply(reply)
            except ssl.SSLError:
                self._drop(where)
                raise  # a TLS failure, not an outage: translated as such (never retried)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(where)
                if attempt == 1 and reused and isinstance(exc, _STALE_CONNECTION):
                    continue  # the server closed it while it sat idle: once more, on a new one
                raise ConnectionError(f"HEAD failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        raise AssertionError("unreachable")

    def _send(self, conn: http.client.HTTPConnection, target: str) -> http.client.HTTPResponse:
        if conn.sock is None:
            conn.connect()  # within the connect timeout; replies then get the read timeout
            assert conn.sock is not None
            conn.sock.settimeout(self.settings.read_timeout_s)
        conn.request("HEAD", target)
        reply = conn.getresponse()
        reply.read()  # nothing: a HEAD has no body; frees the connection for the next request
        return reply

    def _connection(self, where: tuple[str, str, int | None]) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection to `where`, and whether it was used before."""
        conns: dict[tuple[str, str, int | None], http.client.HTTPConnection] | None = getattr(
            self._local, "conns", None
        )
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(where)
        if conn is not None:
            return conn, True
        scheme, host, port = where
        timeout = self.settings.connect_timeout_s
        if scheme == "https":
            if self._tls is None:
                self._tls = self._tls_context(self.settings)
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conns[where] = conn
        return conn, False

    def _drop(self, where: tuple[str, str, int | None]) -> None:
        conns = getattr(self._local, "conns", {})
        conn = conns.pop(where, None)
        if conn is not None:
            conn.close()


def _as_head_reply(reply: http.client.HTTPResponse) -> dict[str, Any]:
    """botocore's `head_object` reply from the raw one, or the `ClientError` it would raise."""
    status = reply.status
    if status != 200:
        error = {"Code": str(status), "Message": reply.reason}
        raise botocore.exceptions.ClientError(
            {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
            "HeadObject",
        )
    headers = reply.headers
    result: dict[str, Any] = {
        "ResponseMetadata": {"HTTPStatusCode": status},
        "ETag": headers.get("ETag", ""),
        "Metadata": {
            name[len(META_PREFIX) :]: value for name, value in headers.items() if name.lower().startswith(META_PREFIX)
        },
    }
    length = headers.get("Content-Length")
    if length is not None:
        result["ContentLength"] = int(length)
    modified = headers.get("Last-Modified")
    if modified is not None:
        result["LastModified"] = parse_s3_timestamp(modified)
    return result
