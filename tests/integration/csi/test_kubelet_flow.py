"""The whole node lifecycle the way kubelet drives it, on real S3 with real FUSE mounts."""

from __future__ import annotations

import errno
from typing import Any

import grpc
import pytest

from razorfs_wire.csi.v1 import csi_pb2
from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.fusemount import is_mounted
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def test_two_pods_share_a_volume_and_unstage_leaves_the_data_in_s3(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str, fuse_available: None
) -> None:
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "vol1")
    payload = b"written by pod a\n" * 1000
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        volume.stage(node)  # kubelet retries: idempotent
        pod_a = volume.publish(node, "pod-a")
        pod_b = volume.publish(node, "pod-b")
        volume.publish(node, "pod-b")  # idempotent
        assert is_mounted(volume.staging_path) and is_mounted(pod_a) and is_mounted(pod_b)

        (pod_a / "dir").mkdir()
        (pod_a / "dir" / "hello.txt").write_bytes(payload)
        assert (pod_b / "dir" / "hello.txt").read_bytes() == payload

        stats = node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=str(pod_a))
        )
        assert not stats.volume_condition.abnormal
        units = {u.unit for u in stats.usage}
        assert csi_pb2.VolumeUsage.BYTES in units

        for target in (pod_a, pod_b):
            volume.unpublish(node, target)
            assert not is_mounted(target) and not target.exists()
        volume.unpublish(node, pod_a)  # idempotent
        volume.unstage(node)
        # The data is in S3 the moment unstage returns: no waiting.
        body = s3_client.get_object(Bucket=bucket, Key="vol1/dir/hello.txt")["Body"].read()
        assert body == payload
        assert not is_mounted(volume.staging_path)
        assert node_plugin.daemon_pids() == []
        volume.unstage(node)  # idempotent


def test_read_only_publish_refuses_writes_and_unstage_waits_for_unpublish(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str, fuse_available: None
) -> None:
    s3_client.put_object(Bucket=bucket, Key="vol2/existing.txt", Body=b"from s3")
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "vol2")
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        reader = volume.publish(node, "reader", read_only=True)
        assert (reader / "existing.txt").read_bytes() == b"from s3"
        with pytest.raises(OSError) as info:
            (reader / "new.txt").write_bytes(b"nope")
        assert info.value.errno == errno.EROFS
        with pytest.raises(grpc.RpcError) as rpc:
            volume.publish(node, "reader", read_only=False)  # same target, other mode
        assert rpc.value.code() == grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as rpc:
            volume.unstage(node)
        assert rpc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert is_mounted(reader)
        volume.unpublish(node, reader)
        volume.unstage(node)


def test_volume_mount_group_owns_objects_without_ownership_metadata(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str, fuse_available: None
) -> None:
    s3_client.put_object(Bucket=bucket, Key="grp/plain.txt", Body=b"no uid/gid metadata")
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "grp")
    volume.mount_group = "4242"
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        target = volume.publish(node, "pod")
        assert (target / "plain.txt").stat().st_gid == 4242
        volume.unpublish(node, target)
        volume.unstage(node)


def test_stage_with_wrong_credentials_fails_with_the_daemons_reason_and_leaves_nothing(
    node_plugin: NodePlugin, s3_server: S3Server, bucket: str, fuse_available: None
) -> None:
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "denied")
    volume.secrets["secretAccessKey"] = "wrong-secret-value-123"
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        with pytest.raises(grpc.RpcError) as info:
            volume.stage(node)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    details = info.value.details() or ""
    assert "InvalidCredentials" in details and "wrong-secret-value-123" not in details
    assert not is_mounted(volume.staging_path)
    assert node_plugin.daemon_pids() == []
    assert "wrong-secret-value-123" not in node_plugin.log_path.read_text()


def test_pods_with_other_fsgroups_get_mounts_of_their_own_and_one_fsgroup_shares_one(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str, fuse_available: None
) -> None:
    s3_client.put_object(Bucket=bucket, Key="groups/plain.txt", Body=b"no uid/gid metadata")
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "groups")
    volume.mount_group = "4242"
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)  # kubelet stages once, with the first pod's fsGroup
        first = volume.publish(node, "first")
        volume.mount_group = "4343"
        other = volume.publish(node, "other")
        volume.mount_group = "4242"
        third = volume.publish(node, "third")
        assert (first / "plain.txt").stat().st_gid == 4242
        assert (other / "plain.txt").stat().st_gid == 4343, "never silently the first pod's group"
        assert (third / "plain.txt").stat().st_gid == 4242
        assert first.stat().st_dev == third.stat().st_dev != other.stat().st_dev, "one mount per fsGroup"
        assert len(node_plugin.daemon_pids()) == 2

        (other / "from-other.txt").write_bytes(b"4343 wrote this")
        volume.unpublish(node, other)  # its group's last pod: its mount flushes and goes
        assert len(node_plugin.daemon_pids()) == 1
        assert s3_client.get_object(Bucket=bucket, Key="groups/from-other.txt")["Body"].read() == b"4343 wrote this"
        for target in (first, third):
            volume.unpublish(node, target)
        volume.unstage(node)
        assert node_plugin.daemon_pids() == []
        assert not any(p.name.startswith("razorfs-fsgroup") for p in volume.staging_path.parent.iterdir())
