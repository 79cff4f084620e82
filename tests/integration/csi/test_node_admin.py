"""NodeAdmin on a staged volume: per-volume figures, flush to S3 on demand, warm with progress."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from razorfs.mount.control import request_final
from razorfs_wire.razorfs.v1 import node_admin_pb2
from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import ADMIN_TOKEN, NodePlugin
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

AUTH = [("authorization", f"Bearer {ADMIN_TOKEN}")]


def test_node_admin_lists_flushes_and_warms_a_staged_volume(
    node_plugin: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str, fuse_available: None
) -> None:
    s3_client.put_object(Bucket=bucket, Key="adm/big/one.bin", Body=b"1" * 300_000)
    s3_client.put_object(Bucket=bucket, Key="adm/big/two.bin", Body=b"2" * 200_000)
    volume = KubeletVolume.on_s3(node_plugin.kubelet_dir, s3_server, bucket, "adm", cacheSize="64MiB")
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        volume.stage(node)
        target = volume.publish(node, "pod")
        (target / "written.txt").write_bytes(b"flush me")
        with node_plugin.admin_channel() as admin_channel:
            admin = node_plugin.admin(admin_channel)
            listed = admin.ListVolumes(node_admin_pb2.ListVolumesRequest(), metadata=AUTH).volumes
            assert [v.volume_id for v in listed] == [volume.volume_id]
            state = listed[0]
            assert state.state == "Mounted" and state.daemon_pid > 0
            assert state.staging_path == str(volume.staging_path)
            assert list(state.published_paths) == [str(target)]
            assert state.cache_limit_bytes == 64 * 1024 * 1024

            admin.FlushVolume(node_admin_pb2.FlushVolumeRequest(volume_id=volume.volume_id), metadata=AUTH)
            assert s3_client.get_object(Bucket=bucket, Key="adm/written.txt")["Body"].read() == b"flush me"
            after = admin.ListVolumes(node_admin_pb2.ListVolumesRequest(), metadata=AUTH).volumes[0]
            assert after.dirty_bytes == 0

            warm = node_admin_pb2.WarmVolumeRequest(volume_id=volume.volume_id, paths=["big/"])
            progress = list(admin.WarmVolume(warm, metadata=AUTH))
            assert progress and progress[-1].files_done == progress[-1].files_total == 2
            assert progress[-1].bytes_done == progress[-1].bytes_total == 500_000
            warmed = admin.ListVolumes(node_admin_pb2.ListVolumesRequest(), metadata=AUTH).volumes[0]
            assert warmed.cached_bytes >= 500_000

            with pytest.raises(grpc.RpcError) as info:
                list(admin.WarmVolume(node_admin_pb2.WarmVolumeRequest(volume_id="nope"), metadata=AUTH))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND

            for outside in ("../other-volume", "/etc", "big/../../x"):
                request = node_admin_pb2.WarmVolumeRequest(volume_id=volume.volume_id, paths=[outside])
                with pytest.raises(grpc.RpcError) as info:
                    list(admin.WarmVolume(request, metadata=AUTH))
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            # The daemon checks again, whoever asks on its control socket.
            (socket_path,) = node_plugin.cache_root.glob("*/cache/control.sock")
            reply = request_final(socket_path, {"op": "warm", "paths": ["../other-volume"]}, timeout_s=10)
            assert reply["ok"] is False and "'..' segment" in reply["error"]

            # A flush asked without a timeout still has one (the plugin's ceiling); with a
            # deadline, the call ends by it.
            flush = node_admin_pb2.FlushVolumeRequest(volume_id=volume.volume_id)
            admin.FlushVolume(flush, metadata=AUTH, timeout=10)
        volume.unpublish(node, target)
        volume.unstage(node)
