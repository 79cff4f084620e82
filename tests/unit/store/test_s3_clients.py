"""Stores built per request share one boto3 client per connection settings; a daemon's store
with swappable credentials keeps its own. Every client reads S3's timestamps as botocore would,
without its dateutil path, and sends small PUTs without `Expect: 100-continue`."""

from __future__ import annotations

import botocore.utils
import pytest
from botocore.awsrequest import AWSRequest, AWSResponse

from razorfs.store.s3 import S3Store
from razorfs.store.s3_clients import parse_s3_timestamp, shared_client
from razorfs.store.s3_credentials import StaticKeys
from razorfs.store.s3_settings import S3Settings


def _settings(bucket: str = "b1", secret: str = "s1", **extra: object) -> S3Settings:
    return S3Settings(
        bucket=bucket,
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        access_key_id="k1",
        secret_access_key=secret,
        **extra,  # type: ignore[arg-type]
    )


def test_stores_of_the_same_endpoint_and_keys_share_one_client_whatever_the_bucket() -> None:
    first = S3Store(_settings("b1"), reuse_client=True)
    second = S3Store(_settings("b2"), reuse_client=True)
    assert first._client is second._client


def test_other_keys_or_timeouts_get_another_client() -> None:
    base = shared_client(_settings())
    assert shared_client(_settings(secret="s2")) is not base
    assert shared_client(_settings(read_timeout_s=3.0)) is not base


def test_a_store_without_reuse_owns_its_client() -> None:
    assert S3Store(_settings())._client is not shared_client(_settings())


def test_explicit_credentials_are_never_shared() -> None:
    explicit = _settings(credential_source="explicit", credentials=StaticKeys("k1", "s1"))
    with pytest.raises(ValueError, match="owns its client"):
        shared_client(explicit)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T15:04:36.000Z",  # a listing's LastModified
        "2026-11-28T15:04:36Z",
        "2026-11-28T15:04:36.123+02:00",
        "Sat, 28 Nov 2026 15:04:36 GMT",  # a HEAD's Last-Modified header
        "1795875476",  # epoch seconds: botocore's own parser answers
        "1795875476.5",
    ],
)
def test_timestamps_parse_to_the_instant_botocore_reads(value: str) -> None:
    ours = parse_s3_timestamp(value)
    assert ours.tzinfo is not None
    assert ours.timestamp() == botocore.utils.parse_timestamp(value).timestamp()


def test_clients_parse_timestamps_without_dateutil() -> None:
    for client in (S3Store(_settings())._client, shared_client(_settings())):
        factory = client._endpoint._response_parser_factory  # type: ignore[attr-defined]
        assert factory.create_parser("rest-xml")._timestamp_parser is parse_s3_timestamp


class _EmptyBody:
    def stream(self, **kwargs: object) -> list[bytes]:
        return [b""]


def test_small_puts_go_without_expect_continue_and_large_ones_keep_it() -> None:
    store = S3Store(_settings())
    expect_headers: list[object] = []

    def answer(request: AWSRequest, **kwargs: object) -> AWSResponse:
        expect_headers.append(request.headers.get("Expect"))
        return AWSResponse(request.url, 200, {"ETag": '"e"'}, _EmptyBody())

    store._client.meta.events.register("before-send.s3.PutObject", answer)
    store.put_bytes("small", b"x" * 4096, {})
    store.put_bytes("large", b"x" * (2 << 20), {})
    assert expect_headers == [None, b"100-continue"]
