"""Typed errors map to the CSI status codes in one place."""

from __future__ import annotations

import grpc

from razorfs.csi.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, status_of
from razorfs.store.errors import AccessDenied, BucketNotFound, StoreUnavailable


def test_csi_errors_map_to_their_codes() -> None:
    assert status_of(InvalidArgument("x"))[0] is grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(NotFound("x"))[0] is grpc.StatusCode.NOT_FOUND
    assert status_of(AlreadyExists("x"))[0] is grpc.StatusCode.ALREADY_EXISTS
    assert status_of(FailedPrecondition("x"))[0] is grpc.StatusCode.FAILED_PRECONDITION


def test_store_errors_map_to_codes_and_unknown_errors_hide_details() -> None:
    assert status_of(AccessDenied("x"))[0] is grpc.StatusCode.PERMISSION_DENIED
    assert status_of(BucketNotFound("x"))[0] is grpc.StatusCode.FAILED_PRECONDITION
    assert status_of(StoreUnavailable("x"))[0] is grpc.StatusCode.UNAVAILABLE
    code, message = status_of(RuntimeError("secret=abc"))
    assert code is grpc.StatusCode.INTERNAL and "abc" not in message
