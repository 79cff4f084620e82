"""Mount options (CSI mount_flags, a PV's or StorageClass's mountOptions) on a real `razorfs-node`
with real FUSE mounts: `ro` gives a read-only volume, unknown options are refused by name."""

from __future__ import annotations

import errno
from typing import Any

import grpc
import pytest

from razorfs_wire.csi.v1 import csi_pb2
from tests.integration.csi.kubelet_calls import KubeletVolume, capability, rpc_code
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def test_ro_mount_option_gives_a_read_only_volume_that_still_reads(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str, fuse_available: None
) -> None:
    s3_client.put_object(Bucket=bucket, Key="ro-vol/existing.txt", Body=b"from s3")
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "ro-vol", uid="0")
    volume.mount_flags = ("ro", "uid=1234")
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        target = volume.publish(node, "pod-ro")  # the pod itself did not ask for read-only
        try:
            assert (target / "existing.txt").read_bytes() == b"from s3"
            assert (target / "existing.txt").stat().st_uid == 1234  # uid= overrode the context's uid
            for path in (target, volume.staging_path):
                with pytest.raises(OSError) as info:
                    (path / "new.txt").write_bytes(b"nope")
                assert info.value.errno == errno.EROFS
        finally:
            volume.unpublish(node, target)
            volume.unstage(node)
    assert keys_under(s3_client, bucket, "ro-vol/") == ["ro-vol/existing.txt"]


@pytest.mark.parametrize(("flags", "named"), [(("noatime",), "'noatime'"), (("ro", "rw"), "'rw'")])
def test_unknown_or_conflicting_mount_options_fail_stage_naming_the_option(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str, flags: tuple[str, ...], named: str
) -> None:
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "bad-flags")
    volume.mount_flags = flags
    with node_plugin.channel() as channel, pytest.raises(grpc.RpcError) as info:
        volume.stage(node_plugin.node(channel))
    assert rpc_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert named in str(info.value.details())  # type: ignore[attr-defined]
    assert node_plugin.daemon_pids() == []


def test_create_volume_refuses_a_storage_class_with_an_unknown_mount_option(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    parameters = {"endpoint": s3_server.endpoint_url, "bucket": bucket, "forcePathStyle": "true"}
    request = csi_pb2.CreateVolumeRequest(
        name="pvc-flags",
        volume_capabilities=[capability(mount_flags=("ro", "nodev"))],
        parameters=parameters,
        secrets={"accessKeyID": s3_server.access_key, "secretAccessKey": s3_server.secret_key},
    )
    with node_plugin.channel() as channel, pytest.raises(grpc.RpcError) as info:
        node_plugin.controller(channel).CreateVolume(request)
    assert rpc_code(info.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "'nodev'" in str(info.value.details())  # type: ignore[attr-defined]
    assert keys_under(s3_client, bucket, "pvc-flags") == []


def keys_under(client: Any, bucket: str, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)
