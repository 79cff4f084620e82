"""The Controller service against the real S3 server: a prefix per volume, idempotent by name,
conflicts refused, deletion limited to the volume's own prefix."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from razorfs.csi.volume_handle import parse_volume_id
from razorfs_wire.csi.v1 import csi_pb2
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3

Mode = csi_pb2.VolumeCapability.AccessMode
GiB = 1024**3


def capability(mode: int = Mode.MULTI_NODE_MULTI_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode)
    )


def secrets(s3: S3Server, secret: str | None = None) -> dict[str, str]:
    return {"accessKeyID": s3.access_key, "secretAccessKey": secret or s3.secret_key}


def create_request(s3: S3Server, bucket: str, name: str, size: int = GiB, **extra: str) -> csi_pb2.CreateVolumeRequest:
    parameters = {"endpoint": s3.endpoint_url, "bucket": bucket, "region": s3.region, "forcePathStyle": "true", **extra}
    return csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[capability()],
        parameters=parameters,
        secrets=secrets(s3),
    )


def keys(client: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def code_of(call: Any, request: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    return info.value.code()  # type: ignore[no-any-return,attr-defined]


def test_create_volume_is_idempotent_by_name_and_encodes_its_prefix(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        first = controller.CreateVolume(create_request(s3_server, bucket, "pvc-1", prefix="k8s", cacheMode="writeback"))
        again = controller.CreateVolume(create_request(s3_server, bucket, "pvc-1", prefix="k8s", cacheMode="writeback"))
    assert first.volume.volume_id == again.volume.volume_id
    assert first.volume.capacity_bytes == GiB
    handle = parse_volume_id(first.volume.volume_id)
    assert handle is not None and (handle.bucket, handle.prefix) == (bucket, "k8s/pvc-1")
    context = dict(first.volume.volume_context)
    assert context["prefix"] == "k8s/pvc-1" and context["cacheMode"] == "writeback"
    assert "secretAccessKey" not in str(context) and s3_server.secret_key not in str(context)
    assert keys(s3_client, bucket) == ["k8s/pvc-1.razorfs-volume.json", "k8s/pvc-1/"]


def test_create_volume_with_the_same_name_and_another_capacity_is_already_exists(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str
) -> None:
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        controller.CreateVolume(create_request(s3_server, bucket, "pvc-2", size=GiB))
        assert code_of(controller.CreateVolume, create_request(s3_server, bucket, "pvc-2", size=2 * GiB)) == (
            grpc.StatusCode.ALREADY_EXISTS
        )


def test_create_volume_refuses_bad_requests(node_plugin: NodePlugin, s3_server: S3Server, bucket: str) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        no_name = create_request(s3_server, bucket, "")
        assert code_of(controller.CreateVolume, no_name) == invalid
        no_caps = create_request(s3_server, bucket, "pvc-3")
        del no_caps.volume_capabilities[:]
        assert code_of(controller.CreateVolume, no_caps) == invalid
        typo = create_request(s3_server, bucket, "pvc-3", cachemode="writeback")
        assert code_of(controller.CreateVolume, typo) == invalid
        no_bucket = create_request(s3_server, bucket, "pvc-3")
        del no_bucket.parameters["bucket"]
        assert code_of(controller.CreateVolume, no_bucket) == invalid
        wrong_secret = create_request(s3_server, bucket, "pvc-3")
        wrong_secret.secrets["secretAccessKey"] = "not-the-secret"
        with pytest.raises(grpc.RpcError) as info:
            controller.CreateVolume(wrong_secret)
        assert info.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
        assert "not-the-secret" not in (info.value.details() or "")
        missing_bucket = create_request(s3_server, bucket + "-missing", "pvc-3")
        assert code_of(controller.CreateVolume, missing_bucket) == grpc.StatusCode.FAILED_PRECONDITION


def test_delete_volume_removes_only_its_own_prefix(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        vol = controller.CreateVolume(create_request(s3_server, bucket, "pvc-1")).volume
        controller.CreateVolume(create_request(s3_server, bucket, "pvc-10"))
        for key in ["pvc-1/a.txt", "pvc-1/dir/b.txt", "pvc-10/keep.txt", "pvc-1.txt"]:
            s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
        delete = csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=secrets(s3_server))
        controller.DeleteVolume(delete)
        assert keys(s3_client, bucket) == ["pvc-1.txt", "pvc-10.razorfs-volume.json", "pvc-10/", "pvc-10/keep.txt"]
        controller.DeleteVolume(delete)  # idempotent
        controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id="not-one-of-ours", secrets=secrets(s3_server)))
        assert code_of(controller.DeleteVolume, csi_pb2.DeleteVolumeRequest()) == grpc.StatusCode.INVALID_ARGUMENT
        traversal = csi_pb2.DeleteVolumeRequest(volume_id="a/../../b", secrets=secrets(s3_server))
        assert code_of(controller.DeleteVolume, traversal) == grpc.StatusCode.INVALID_ARGUMENT


def test_validate_volume_capabilities_confirms_mounts_and_knows_missing_volumes(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str
) -> None:
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        vol = controller.CreateVolume(create_request(s3_server, bucket, "pvc-v")).volume
        request = csi_pb2.ValidateVolumeCapabilitiesRequest(
            volume_id=vol.volume_id, volume_capabilities=[capability()], secrets=secrets(s3_server)
        )
        assert list(controller.ValidateVolumeCapabilities(request).confirmed.volume_capabilities) == [capability()]
        block = csi_pb2.VolumeCapability(
            block=csi_pb2.VolumeCapability.BlockVolume(),
            access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
        )
        request.volume_capabilities[0].CopyFrom(block)
        reply = controller.ValidateVolumeCapabilities(request)
        assert not reply.HasField("confirmed") and "block" in reply.message
        controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id, secrets=secrets(s3_server)))
        request.volume_capabilities[0].CopyFrom(capability())
        assert code_of(controller.ValidateVolumeCapabilities, request) == grpc.StatusCode.NOT_FOUND
        foreign = csi_pb2.ValidateVolumeCapabilitiesRequest(volume_id="fake-vol-id", volume_capabilities=[capability()])
        assert code_of(controller.ValidateVolumeCapabilities, foreign) == grpc.StatusCode.NOT_FOUND


def expand_request(volume_id: str, size: int, with_secrets: S3Server | None = None) -> Any:
    return csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capability=capability(),
        secrets=secrets(with_secrets) if with_secrets else {},
    )


def test_expand_volume_records_the_larger_capacity_and_needs_no_node_step(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        kinds = [
            c.rpc.type
            for c in controller.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest()).capabilities
        ]
        assert csi_pb2.ControllerServiceCapability.RPC.EXPAND_VOLUME in kinds
        volume_id = controller.CreateVolume(create_request(s3_server, bucket, "pvc-grow", size=GiB)).volume.volume_id
        grown = controller.ControllerExpandVolume(expand_request(volume_id, 2 * GiB, s3_server))
        assert (grown.capacity_bytes, grown.node_expansion_required) == (2 * GiB, False)
        record = s3_client.get_object(Bucket=bucket, Key="pvc-grow.razorfs-volume.json")["Body"].read()
        assert b'"capacity_bytes": %d' % (2 * GiB) in record
        # Idempotent, and never smaller than what is recorded.
        assert controller.ControllerExpandVolume(expand_request(volume_id, GiB, s3_server)).capacity_bytes == 2 * GiB
        # A repeated CreateVolume (provisioner retry) fits the grown volume and reports its size.
        again = controller.CreateVolume(create_request(s3_server, bucket, "pvc-grow", size=GiB))
        assert (again.volume.volume_id, again.volume.capacity_bytes) == (volume_id, 2 * GiB)
        # Without the controller-expand secret the new size is only the PV's.
        assert controller.ControllerExpandVolume(expand_request(volume_id, 3 * GiB)).capacity_bytes == 3 * GiB
        # A RazorVolume's PV (static ID): the operator keeps its size; the call just succeeds.
        static = controller.ControllerExpandVolume(expand_request("razorfs-0b8f", 5 * GiB))
        assert static.capacity_bytes == 5 * GiB


def test_expand_volume_refuses_bad_requests_and_knows_missing_volumes(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str
) -> None:
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        volume_id = controller.CreateVolume(create_request(s3_server, bucket, "pvc-bad-grow")).volume.volume_id
        no_range = csi_pb2.ControllerExpandVolumeRequest(volume_id=volume_id, secrets=secrets(s3_server))
        assert code_of(controller.ControllerExpandVolume, no_range) == grpc.StatusCode.INVALID_ARGUMENT
        assert code_of(controller.ControllerExpandVolume, expand_request("", GiB)) == grpc.StatusCode.INVALID_ARGUMENT
        controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id, secrets=secrets(s3_server)))
        gone = expand_request(volume_id, 2 * GiB, s3_server)
        assert code_of(controller.ControllerExpandVolume, gone) == grpc.StatusCode.NOT_FOUND


def test_prefix_template_puts_a_claim_under_its_namespace_and_name(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    metadata = {
        "csi.storage.k8s.io/pvc/name": "data",
        "csi.storage.k8s.io/pvc/namespace": "team-a",
        "csi.storage.k8s.io/pv/name": "pvc-1234",
    }
    request = create_request(
        s3_server, bucket, "pvc-1234", prefix="claims", prefixTemplate="${pvc.metadata.namespace}/${pvc.metadata.name}"
    )
    request.parameters.update(metadata)
    with node_plugin.channel() as channel:
        controller = node_plugin.controller(channel)
        volume = controller.CreateVolume(request).volume
        assert volume.volume_context["prefix"] == "claims/team-a/data"
        assert "prefixTemplate" not in volume.volume_context
        assert keys(s3_client, bucket) == ["claims/team-a/data.razorfs-volume.json", "claims/team-a/data/"]
        bad = create_request(s3_server, bucket, "pvc-5678", prefixTemplate="${pvc.metadata.namespace}")
        assert code_of(controller.CreateVolume, bad) == grpc.StatusCode.INVALID_ARGUMENT
