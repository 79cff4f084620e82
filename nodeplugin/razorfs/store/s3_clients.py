"""The boto3 S3 clients behind `S3Store`: how one is built from `S3Settings`, and the one cache of
shared clients for callers that build a store per request (the operator, the CSI controller).

Building a client loads and parses botocore's service model, which costs more CPU than the
requests a reconcile makes, so shared clients are built once per connection settings and
credentials from one session and reused (clients are thread-safe; a session is not, hence the
lock around creation). A store with explicit, swappable or web identity credentials (a mount
daemon) always owns its client: its keys change under it. Every client parses S3's timestamps
with the standard library (`parse_s3_timestamp`), not botocore's dateutil path."""

from __future__ import annotations

import email.utils
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.credentials
import botocore.session
import botocore.utils
from botocore.config import Config

from razorfs.store.s3_credentials import SwappableCredentials, WebIdentityCredentials, explicit_session
from razorfs.store.s3_settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_SHARED_CLIENTS = 64

_SHARED_SESSION = boto3.session.Session()
_SHARED: OrderedDict[tuple[object, ...], S3Client] = OrderedDict()
_SHARED_LOCK = threading.Lock()


def parse_s3_timestamp(value: str) -> datetime:
    """A timestamp of an S3 reply: ISO 8601 in XML bodies (a listing's LastModified), RFC 1123 in
    headers (a HEAD's Last-Modified). botocore's own parser goes through dateutil at about 0.1 ms
    a value: half the CPU of parsing a 1,000-key listing page. Other forms go to botocore."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            fallback: datetime = botocore.utils.parse_timestamp(value)
            return fallback
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _with_fast_timestamps(session: boto3.session.Session) -> boto3.session.Session:
    """The session, its clients' replies parsed with `parse_s3_timestamp` (the parser factory is
    asked for a parser per request, so this holds for clients made before too)."""
    core: botocore.session.Session = session._session
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_s3_timestamp)
    return session


_with_fast_timestamps(_SHARED_SESSION)


# Bodies below this go without `Expect: 100-continue`: botocore asks for it on every PUT whose body
# it wraps as a file, which costs small files a round trip each (about 25% of a 4 KiB PUT's time
# on SeaweedFS); for large bodies it still spares sending them to a server that refuses.
EXPECT_CONTINUE_MIN_BYTES = 1024 * 1024


def _drop_expect_for_small_bodies(params: dict[str, Any], **kwargs: Any) -> None:
    headers = params.get("headers", {})
    if "Expect" not in headers or params.get("body") is None:
        return
    length = botocore.utils.determine_content_length(params["body"])
    if length is not None and length < EXPECT_CONTINUE_MIN_BYTES:
        del headers["Expect"]


def _with_small_puts(client: S3Client) -> S3Client:
    client.meta.events.register_last("before-call.s3", _drop_expect_for_small_bodies)
    return client


def _client_config(settings: S3Settings) -> Config:
    return Config(
        region_name=settings.region,
        # Requests are signed with SigV4 anyway; this makes presigned URLs (store.s3_head) SigV4
        # too, where botocore would otherwise presign with SigV2 for some endpoints.
        signature_version="s3v4",
        s3={"addressing_style": "path" if settings.force_path_style else "auto"},
        max_pool_connections=settings.max_pool_connections,
        connect_timeout=settings.connect_timeout_s,
        read_timeout=settings.read_timeout_s,
        # Our RetryPolicy retries everything, including body reads; botocore must not retry too
        # (attempts would multiply and escape our counters).
        retries={"total_max_attempts": 1, "mode": "standard"},
        # Many S3-compatible servers reject the CRC trailers newer botocore adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def _verify(settings: S3Settings) -> bool | str:
    return str(settings.ca_bundle) if settings.ca_bundle else settings.verify_tls


# Credential sources whose keys the store holds (and the client signs with, nothing else).
_OWN_KEYS = ("explicit", "web-identity")


def signing_credentials(settings: S3Settings) -> botocore.credentials.Credentials | None:
    """The keys a store with its own credentials signs with (fetching web identity keys from STS
    now: a refused token fails here); None for the default chain."""
    if settings.credential_source == "web-identity":
        assert settings.web_identity is not None  # S3Settings refuses web-identity without it
        return WebIdentityCredentials(settings.web_identity)
    return SwappableCredentials(settings.credentials) if settings.credentials else None


def new_client(settings: S3Settings, credentials: botocore.credentials.Credentials | None) -> S3Client:
    """A client of its own for one store."""
    config = _client_config(settings)
    if settings.credential_source in _OWN_KEYS:
        assert credentials is not None  # S3Settings refuses these without their credentials
        session = _with_fast_timestamps(explicit_session(credentials, settings.region))
        explicit: S3Client = session.client(
            "s3", endpoint_url=settings.endpoint_url, verify=_verify(settings), config=config
        )
        return _with_small_puts(explicit)
    # A private session: boto3's default session is not thread-safe to create clients from.
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        region_name=settings.region,
    )
    _with_fast_timestamps(session)
    client: S3Client = session.client("s3", endpoint_url=settings.endpoint_url, verify=_verify(settings), config=config)
    return _with_small_puts(client)


def _connection_key(settings: S3Settings) -> tuple[object, ...]:
    """What a client depends on (not the bucket, transfer sizes or retry policy: those are the
    store's)."""
    return (
        settings.endpoint_url,
        settings.region,
        settings.force_path_style,
        settings.ca_bundle,
        settings.verify_tls,
        settings.max_pool_connections,
        settings.connect_timeout_s,
        settings.read_timeout_s,
        settings.access_key_id,
        settings.secret_access_key,
        settings.session_token,
    )


def shared_client(settings: S3Settings) -> S3Client:
    """The cached client for these connection settings and keys (built on first use; the least
    recently used of more than MAX_SHARED_CLIENTS is dropped). Default-chain settings only."""
    if settings.credential_source in _OWN_KEYS:
        raise ValueError("a store with explicit, swappable or web identity credentials owns its client")
    key = _connection_key(settings)
    with _SHARED_LOCK:
        cached = _SHARED.get(key)
        if cached is not None:
            _SHARED.move_to_end(key)
            return cached
        client: S3Client = _SHARED_SESSION.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
            verify=_verify(settings),
            config=_client_config(settings),
        )
        _SHARED[key] = _with_small_puts(client)
        while len(_SHARED) > MAX_SHARED_CLIENTS:
            _SHARED.popitem(last=False)
        return client


def preload_client_model() -> None:
    """Loads botocore's S3 model and endpoint rules into the shared session (a second or so of
    CPU), so the first requests of a burst do not all queue behind it."""
    with _SHARED_LOCK:
        _SHARED_SESSION.client("s3", region_name="us-east-1", aws_access_key_id="-", aws_secret_access_key="-")
