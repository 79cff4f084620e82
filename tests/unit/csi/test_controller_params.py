"""StorageClass parameters and capacity ranges as CreateVolume reads them."""

from __future__ import annotations

import pytest

from razorfs.csi.controller import requested_capacity, volume_parameters
from razorfs.csi.errors import InvalidArgument
from razorfs_wire.csi.v1 import csi_pb2

BASE = {"endpoint": "http://127.0.0.1:8333", "bucket": "data"}


def test_provisioner_keys_are_dropped_and_volume_keys_kept() -> None:
    parameters = {
        **BASE,
        "cacheMode": "writethrough",
        "csi.storage.k8s.io/provisioner-secret-name": "s3-creds",
        "csi.storage.k8s.io/pvc/name": "data",
    }
    assert volume_parameters(parameters) == {**BASE, "cacheMode": "writethrough"}


def test_unknown_or_invalid_parameters_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="cachemode"):
        volume_parameters({**BASE, "cachemode": "writeback"})
    with pytest.raises(InvalidArgument):
        volume_parameters({**BASE, "cacheSize": "huge"})
    with pytest.raises(InvalidArgument):
        volume_parameters({"bucket": "data"})


@pytest.mark.parametrize(
    ("required", "limit", "expected"), [(0, 0, 0), (10, 0, 10), (0, 20, 20), (10, 20, 10), (20, 20, 20)]
)
def test_capacity_is_what_was_asked_for(required: int, limit: int, expected: int) -> None:
    assert requested_capacity(csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit)) == expected


@pytest.mark.parametrize(("required", "limit"), [(30, 20), (-1, 0), (0, -5)])
def test_impossible_capacity_ranges_are_invalid(required: int, limit: int) -> None:
    with pytest.raises(InvalidArgument):
        requested_capacity(csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit))


def test_a_storage_class_may_ask_for_pod_authentication_with_its_web_identity_and_is_checked() -> None:
    pod = {**BASE, "authentication": "pod", "roleArn": "arn:aws:iam::123456789012:role/a", "stsEndpoint": "https://sts"}
    assert volume_parameters(pod) == pod  # the volume context every PV of the class carries
    with pytest.raises(InvalidArgument, match="stsEndpoint"):
        volume_parameters({**BASE, "authentication": "pod", "roleArn": "arn:aws:iam::123456789012:role/a"})
    with pytest.raises(InvalidArgument, match="only apply with authentication: pod"):
        volume_parameters({**BASE, "roleArn": "arn:aws:iam::123456789012:role/a"})
