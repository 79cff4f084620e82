"""The operator's S3 checks go through razorfs.store: the store's typed errors become the
operator's VolumeProblems (and so condition reasons) in one place, and a whole bucket is never
emptied."""

from __future__ import annotations

import pytest

from razorfs.store.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidCredentials,
    InvalidRequest,
    StoreError,
    StoreUnavailable,
    TlsFailure,
)
from razorfs.volume_spec import S3Location, SecretRef
from razorfs_operator.credentials import S3Credentials
from razorfs_operator.errors import VolumeProblem
from razorfs_operator.s3_bucket import VolumeBucket


def bucket(prefix: str = "team/vol") -> VolumeBucket:
    location = S3Location(
        endpoint="http://127.0.0.1:1", bucket="b1", prefix=prefix, secret_ref=SecretRef(name="creds")
    )
    return VolumeBucket(location, S3Credentials("AKIDEXAMPLE", "s3cr3t-value"), 2.0, credentials_from="ns/creds")


@pytest.mark.parametrize(
    ("error", "reason", "permanent"),
    [
        (InvalidCredentials("list s3://b1: InvalidAccessKeyId"), "CredentialsRejected", True),
        (BucketNotFound("list s3://b1: bucket 'b1' does not exist"), "BucketNotFound", True),
        (AccessDenied("put s3://b1/team/vol/x: AccessDenied"), "AccessDenied", True),
        (StoreUnavailable("list s3://b1: EndpointConnectionError"), "S3Unreachable", False),
        (TlsFailure("list s3://b1: TLS failure"), "S3Unreachable", False),
        (InvalidRequest("put s3://b1/k: InvalidArgument"), "S3RequestFailed", False),
        (StoreError("list s3://b1: Teapot"), "S3RequestFailed", False),
    ],
)
def test_store_errors_become_volume_problems_with_their_condition_reason(
    error: StoreError, reason: str, permanent: bool
) -> None:
    with pytest.raises(VolumeProblem) as caught, bucket()._translated():
        raise error
    assert (caught.value.reason, caught.value.permanent) == (reason, permanent)
    assert "b1" in caught.value.message and "s3cr3t-value" not in caught.value.message


def test_rejected_credentials_name_the_secret() -> None:
    with pytest.raises(VolumeProblem) as caught, bucket()._translated():
        raise InvalidCredentials("list s3://b1: SignatureDoesNotMatch")
    assert "Secret ns/creds" in caught.value.message


def test_delete_everything_refuses_a_whole_bucket_without_a_request() -> None:
    with pytest.raises(VolumeProblem) as caught:
        bucket(prefix="").delete_everything()
    assert caught.value.reason == "AccessDenied" and "whole bucket" in caught.value.message
