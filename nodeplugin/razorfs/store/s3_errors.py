"""Translation of botocore / urllib3 failures into the typed errors of `errors.py`, done once here
so nothing above the store sees a botocore exception. Also decides which failures are worth
retrying. Messages name the operation, bucket and key, never credentials."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass

import botocore.exceptions
import urllib3.exceptions

from razorfs.store.errors import (
    AccessDenied,
    BucketNotFound,
    ChecksumMismatch,
    InvalidCredentials,
    InvalidRequest,
    KeyConflict,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    Throttled,
    TlsFailure,
)
from razorfs.store.s3_credentials import MissingCredentials, WebIdentityFailed

_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchVersion"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
}
_THROTTLE_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "TooManyRequestsException",
    "RequestThrottled",
}
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "BadDigest",
    "IncompleteBody",
    "OperationAborted",
}
_BAD_REQUEST_CODES = {
    "InvalidRequest",
    "InvalidArgument",
    "InvalidRange",
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "EntityTooLarge",
    "KeyTooLongError",
    "MalformedXML",
    "InvalidObjectName",
    "NoSuchUpload",
    "MethodNotAllowed",
    "InvalidBucketName",
}

# Failures of the connection or of reading a response, including a body cut short; botocore
# raises some of these only while the caller reads the body, where its retry loop has ended.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class Translated:
    error: StoreError
    retryable: bool


def describe_target(operation: str, bucket: str, key: str | None) -> str:
    return f"{operation} s3://{bucket}/{key}" if key is not None else f"{operation} s3://{bucket}"


def translate(exc: BaseException, operation: str, bucket: str, key: str | None = None) -> Translated:
    """The typed error for `exc` and whether another attempt may succeed."""
    where = describe_target(operation, bucket, key)
    if isinstance(exc, StoreError):
        return Translated(exc, False)
    if isinstance(exc, botocore.exceptions.ClientError):
        return _translate_client_error(exc, where, bucket)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return Translated(InvalidCredentials(f"{where}: no S3 credentials found (AWS_ACCESS_KEY_ID etc.)"), False)
    # Web identity keys that had to be fetched again before this request was signed, and were not.
    if isinstance(exc, WebIdentityFailed):
        if exc.refused:
            return Translated(InvalidCredentials(f"{where}: {exc}"), False)
        return Translated(StoreUnavailable(f"{where}: {exc}"), True)
    if isinstance(exc, MissingCredentials):
        return Translated(InvalidCredentials(f"{where}: {exc}"), False)
    if isinstance(exc, botocore.exceptions.FlexibleChecksumError):
        # The body read does not match the object's stored checksum: fetch it again.
        return Translated(ChecksumMismatch(f"{where}: body corrupted: {_short(exc)}"), True)
    if isinstance(exc, botocore.exceptions.SSLError | ssl.SSLError):
        return Translated(TlsFailure(f"{where}: TLS failure: {_short(exc)}"), False)
    if isinstance(exc, _CONNECTION_ERRORS):
        return Translated(StoreUnavailable(f"{where}: {type(exc).__name__}: {_short(exc)}"), True)
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return Translated(InvalidRequest(f"{where}: {_short(exc)}"), False)
    if isinstance(exc, OSError):  # sockets raise plain OSError for e.g. EHOSTUNREACH
        return Translated(StoreUnavailable(f"{where}: {type(exc).__name__}: {_short(exc)}"), True)
    return Translated(StoreError(f"{where}: unexpected {type(exc).__name__}: {_short(exc)}"), False)


def _translate_client_error(exc: botocore.exceptions.ClientError, where: str, bucket: str) -> Translated:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    text = f"{where}: {code or status}" + (f" ({error['Message']})" if error.get("Message") else "")
    if code == "NoSuchBucket":
        return Translated(BucketNotFound(f"{where}: bucket {bucket!r} does not exist"), False)
    if code in _NOT_FOUND_CODES or (status == 404 and not code):
        return Translated(ObjectNotFound(text), False)
    if code in _CREDENTIAL_CODES:
        return Translated(InvalidCredentials(text), False)
    if code in ("AccessDenied", "403", "AllAccessDisabled", "AccountProblem") or status == 403:
        return Translated(AccessDenied(text), False)
    if code in ("PreconditionFailed", "412") or status == 412:
        return Translated(PreconditionFailed(text), False)
    if code in _THROTTLE_CODES or status == 429 or (status == 503 and code in ("", "503")):
        return Translated(Throttled(text), True)
    if code in _TRANSIENT_CODES or status >= 500:
        return Translated(StoreUnavailable(text), True)
    if code in ("ExistingObjectIsFile", "ExistingObjectIsDirectory"):
        return Translated(KeyConflict(text), False)
    if code in _BAD_REQUEST_CODES or status == 400 or status == 416:
        return Translated(InvalidRequest(text), False)
    return Translated(StoreError(text), False)


def _short(exc: BaseException) -> str:
    # botocore messages carry the endpoint URL and reason, never credentials; keep them short.
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
