"""operator.allowedEndpoints: a RazorVolume naming another endpoint is refused before anything is
sent to it (the operator signs with the volume's Secret: an open list would make it an SSRF
source for every namespace user)."""

from __future__ import annotations

import pytest

from razorfs_operator.endpoint_policy import EndpointPolicy, endpoint_origin
from razorfs_operator.errors import EndpointNotAllowed

POLICY = EndpointPolicy.parse("https://*.amazonaws.com, http://minio.storage:9000")


@pytest.mark.parametrize(
    "endpoint",
    ["https://s3.eu-west-1.amazonaws.com", "https://S3.EU-WEST-1.AMAZONAWS.COM/", "http://minio.storage:9000/x"],
)
def test_endpoints_matching_a_pattern_are_allowed(endpoint: str) -> None:
    POLICY.check(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://169.254.169.254",  # instance metadata
        "http://s3.eu-west-1.amazonaws.com",  # right host, wrong scheme
        "https://evil.example/.amazonaws.com",  # the path is not the host
        "https://s3.amazonaws.com.evil.example",
        "https://s3.amazonaws.com@evil.example",  # user information hiding the host
        "http://minio.storage:9001",
        "http://kubernetes.default.svc",
    ],
)
def test_other_endpoints_are_refused_with_a_permanent_problem(endpoint: str) -> None:
    with pytest.raises(EndpointNotAllowed) as info:
        POLICY.check(endpoint)
    assert info.value.permanent and info.value.reason == "EndpointNotAllowed"


def test_no_pattern_allows_every_endpoint() -> None:
    EndpointPolicy.parse("").check("http://10.0.0.1:9000")


def test_origin_is_scheme_host_and_port_only() -> None:
    assert endpoint_origin("https://Bucket.S3.example:8443/path?q=1") == "https://bucket.s3.example:8443"
    assert endpoint_origin("http://[::1]:9000") == "http://[::1]:9000"
