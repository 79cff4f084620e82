"""Every botocore failure maps to one typed store error, retryable or not, naming the target."""

from __future__ import annotations

import botocore.exceptions
import pytest
import urllib3.exceptions

from razorfs.store.errors import (
    AccessDenied,
    BucketNotFound,
    ChecksumMismatch,
    InvalidCredentials,
    InvalidRequest,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    Throttled,
)
from razorfs.store.s3_credentials import MissingCredentials, WebIdentityFailed
from razorfs.store.s3_errors import translate


def client_error(code: str, status: int, message: str = "msg") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "expected", "retryable"),
    [
        ("NoSuchKey", 404, ObjectNotFound, False),
        ("404", 404, ObjectNotFound, False),
        ("NoSuchBucket", 404, BucketNotFound, False),
        ("AccessDenied", 403, AccessDenied, False),
        ("403", 403, AccessDenied, False),
        ("InvalidAccessKeyId", 403, InvalidCredentials, False),
        ("SignatureDoesNotMatch", 403, InvalidCredentials, False),
        ("PreconditionFailed", 412, PreconditionFailed, False),
        ("SlowDown", 503, Throttled, True),
        ("TooManyRequests", 429, Throttled, True),
        ("503", 503, Throttled, True),
        ("InternalError", 500, StoreUnavailable, True),
        ("ServiceUnavailable", 503, StoreUnavailable, True),
        ("BadGateway", 502, StoreUnavailable, True),
        ("EntityTooSmall", 400, InvalidRequest, False),
        ("InvalidRange", 416, InvalidRequest, False),
        ("SomethingNew", 409, StoreError, False),
    ],
)
def test_client_errors_map_to_typed_errors(code: str, status: int, expected: type[StoreError], retryable: bool) -> None:
    result = translate(client_error(code, status), "get", "bkt", "dir/key")
    assert type(result.error) is expected
    assert result.retryable is retryable
    assert "get s3://bkt/dir/key" in str(result.error)


@pytest.mark.parametrize(
    "exc",
    [
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        botocore.exceptions.IncompleteReadError(actual_bytes=5, expected_bytes=10),
        botocore.exceptions.ResponseStreamingError(error="reset"),
        urllib3.exceptions.ProtocolError("Connection broken"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_connection_and_body_read_failures_are_retryable_unavailability(exc: Exception) -> None:
    result = translate(exc, "get", "bkt", "k")
    assert isinstance(result.error, StoreUnavailable)
    assert result.retryable


def test_missing_credentials_are_invalid_credentials_and_not_retried() -> None:
    result = translate(botocore.exceptions.NoCredentialsError(), "list", "bkt")
    assert isinstance(result.error, InvalidCredentials)
    assert not result.retryable
    assert "list s3://bkt" in str(result.error)


def test_typed_errors_pass_through_unchanged() -> None:
    err = ObjectNotFound("x")
    assert translate(err, "head", "b", "k").error is err


def test_web_identity_failures_at_a_refresh_are_credentials_or_unavailable() -> None:
    refused = translate(WebIdentityFailed("STS x for role r refused the token: InvalidIdentityToken", True), "GET", "b")
    assert isinstance(refused.error, InvalidCredentials) and not refused.retryable
    assert "refused the token: InvalidIdentityToken" in str(refused.error)
    away = translate(WebIdentityFailed("STS x for role r could not be asked: ConnectTimeoutError", False), "GET", "b")
    assert isinstance(away.error, StoreUnavailable) and away.retryable
    gone = translate(MissingCredentials("web identity token file /t is empty"), "GET", "b")
    assert isinstance(gone.error, InvalidCredentials) and not gone.retryable


def test_a_body_that_fails_its_checksum_is_a_retryable_checksum_mismatch() -> None:
    error = botocore.exceptions.FlexibleChecksumError(error_msg="Expected checksum AAAAAA== did not match")
    result = translate(error, "get", "bucket", "dir/file")
    assert isinstance(result.error, ChecksumMismatch)
    assert result.retryable
    assert "get s3://bucket/dir/file" in str(result.error)
