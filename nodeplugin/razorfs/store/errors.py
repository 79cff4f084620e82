"""Typed object-store errors. The FUSE layer maps them to errno, the CSI layer to gRPC codes and
the operator to conditions; nothing above the store sees a botocore exception.

Messages never contain credentials: they name the operation, bucket and key only."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every object-store failure."""


class ObjectNotFound(StoreError):
    """No object under that key."""


class BucketNotFound(StoreError):
    """The bucket does not exist."""


class AccessDenied(StoreError):
    """The credentials are valid but not allowed to do this."""


class InvalidCredentials(StoreError):
    """The access key is unknown or the signature does not match (wrong secret)."""


class PreconditionFailed(StoreError):
    """A conditional request failed: the object changed since we last saw it (ETag mismatch)."""


class Throttled(StoreError):
    """The store asked us to slow down (503 SlowDown, 429) and retries ran out."""


class StoreUnavailable(StoreError):
    """The endpoint could not be reached or kept failing (5xx, resets, timeouts) after retries."""


class ChecksumMismatch(StoreError):
    """The bytes received do not match the checksum stored with the object (corrupted in transit
    or at rest); retried like any failed read, and after retries never handed out as content."""


class InvalidRequest(StoreError):
    """The store rejected the request as malformed (bad key, bad range, entity too large)."""


class KeyConflict(InvalidRequest):
    """The server cannot keep this key next to an existing one: filer-backed servers (SeaweedFS)
    refuse `a` as an object when `a/...` exists, and the reverse."""


class TlsFailure(StoreUnavailable):
    """The TLS handshake failed (untrusted or mismatched certificate); retrying does not help."""
