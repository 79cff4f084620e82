"""Identity, socket permissions, NodeAdmin authentication and argument validation of a running
`razorfs-node` (no S3 or mount needed for these answers)."""

from __future__ import annotations

import re
import stat
import urllib.request
from pathlib import Path

import grpc
import pytest

from razorfs.volume_spec import CSI_DRIVER_NAME
from razorfs_wire.csi.v1 import csi_pb2
from razorfs_wire.razorfs.v1 import node_admin_pb2
from tests.integration.csi.plugin import ADMIN_TOKEN, NodePlugin
from tests.realparts.processes import free_port

Mode = csi_pb2.VolumeCapability.AccessMode
NodeRpc = csi_pb2.NodeServiceCapability.RPC.Type


def mount_capability(mode: int = Mode.SINGLE_NODE_WRITER) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode)
    )


def code_of(call: object, *args: object, **kwargs: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value.code()  # type: ignore[no-any-return,attr-defined]


def test_csi_socket_is_mode_0600(node_plugin: NodePlugin) -> None:
    assert stat.S_ISSOCK(node_plugin.socket_path.stat().st_mode)
    assert stat.S_IMODE(node_plugin.socket_path.stat().st_mode) == 0o600


def test_identity_names_the_driver_and_advertises_the_controller_with_online_expansion(
    node_plugin: NodePlugin,
) -> None:
    with node_plugin.channel() as channel:
        identity = node_plugin.identity(channel)
        info = identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest())
        assert info.name == CSI_DRIVER_NAME and info.vendor_version
        caps = identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
        services = [c.service.type for c in caps.capabilities if c.WhichOneof("type") == "service"]
        assert services == [csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE]
        expansion = [c.volume_expansion.type for c in caps.capabilities if c.WhichOneof("type") == "volume_expansion"]
        assert expansion == [csi_pb2.PluginCapability.VolumeExpansion.ONLINE]
        assert identity.Probe(csi_pb2.ProbeRequest()).ready.value is True


def test_node_mode_does_not_advertise_or_serve_the_controller(plugin_root: Path) -> None:
    plugin = NodePlugin(plugin_root, mode="node")
    try:
        plugin.start()
        with plugin.channel() as channel:
            caps = plugin.identity(channel).GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
            assert list(caps.capabilities) == []
            request = csi_pb2.ControllerGetCapabilitiesRequest()
            assert (
                code_of(plugin.controller(channel).ControllerGetCapabilities, request) == grpc.StatusCode.UNIMPLEMENTED
            )
    finally:
        plugin.cleanup()


def test_node_capabilities_and_info(node_plugin: NodePlugin) -> None:
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        kinds = {c.rpc.type for c in node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest()).capabilities}
        assert {NodeRpc.STAGE_UNSTAGE_VOLUME, NodeRpc.GET_VOLUME_STATS, NodeRpc.VOLUME_MOUNT_GROUP} <= kinds
        assert node.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id == "test-node"


def test_node_admin_refuses_a_missing_or_wrong_token(node_plugin: NodePlugin) -> None:
    with node_plugin.admin_channel() as channel:
        admin = node_plugin.admin(channel)
        request = node_admin_pb2.ListVolumesRequest()
        assert code_of(admin.ListVolumes, request) == grpc.StatusCode.UNAUTHENTICATED
        wrong = [("authorization", f"Bearer {ADMIN_TOKEN}x")]
        assert code_of(admin.ListVolumes, request, metadata=wrong) == grpc.StatusCode.UNAUTHENTICATED
        flush = node_admin_pb2.FlushVolumeRequest(volume_id="v")
        assert code_of(admin.FlushVolume, flush, metadata=wrong) == grpc.StatusCode.UNAUTHENTICATED
        warm = admin.WarmVolume(node_admin_pb2.WarmVolumeRequest(volume_id="v"), metadata=wrong)
        assert code_of(list, warm) == grpc.StatusCode.UNAUTHENTICATED
        right = [("authorization", f"Bearer {ADMIN_TOKEN}")]
        reply = admin.ListVolumes(request, metadata=right)
        assert reply.node_id == "test-node" and list(reply.volumes) == []
        assert code_of(admin.FlushVolume, flush, metadata=right) == grpc.StatusCode.NOT_FOUND
    assert ADMIN_TOKEN not in node_plugin.log_path.read_text()


def test_traversal_in_volume_ids_and_paths_is_invalid_argument(node_plugin: NodePlugin) -> None:
    kubelet = node_plugin.kubelet_dir
    staging = str(kubelet / "plugins" / "stage")
    target = str(kubelet / "pods" / "p1" / "mount")
    context = {"endpoint": "http://127.0.0.1:1", "bucket": "b"}
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)

        def stage(volume_id: str, path: str) -> grpc.StatusCode:
            request = csi_pb2.NodeStageVolumeRequest(
                volume_id=volume_id,
                staging_target_path=path,
                volume_capability=mount_capability(),
                volume_context=context,
            )
            return code_of(node.NodeStageVolume, request)

        def publish(volume_id: str, path: str) -> grpc.StatusCode:
            request = csi_pb2.NodePublishVolumeRequest(
                volume_id=volume_id, staging_target_path=staging, target_path=path, volume_capability=mount_capability()
            )
            return code_of(node.NodePublishVolume, request)

        for bad_id in ["../../etc", "a/../../b", "/etc/passwd", "x\x00y"]:
            assert stage(bad_id, staging) == invalid
            assert publish(bad_id, target) == invalid
        for bad_path in [str(kubelet / ".." / "escape"), "/etc/razorfs", "relative/mount", f"{kubelet}/../../tmp"]:
            assert stage("vol-1", bad_path) == invalid
            assert publish("vol-1", bad_path) == invalid
            unpublish = csi_pb2.NodeUnpublishVolumeRequest(volume_id="vol-1", target_path=bad_path)
            assert code_of(node.NodeUnpublishVolume, unpublish) == invalid
            unstage = csi_pb2.NodeUnstageVolumeRequest(volume_id="vol-1", staging_target_path=bad_path)
            assert code_of(node.NodeUnstageVolume, unstage) == invalid


def test_missing_or_unsupported_capabilities_and_fields_get_the_right_codes(node_plugin: NodePlugin) -> None:
    kubelet = node_plugin.kubelet_dir
    staging = str(kubelet / "plugins" / "stage")
    target = str(kubelet / "pods" / "p1" / "mount")
    block = csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
    )
    context = {"endpoint": "http://127.0.0.1:1", "bucket": "b"}
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    with node_plugin.channel() as channel:
        node = node_plugin.node(channel)
        no_capability = csi_pb2.NodeStageVolumeRequest(
            volume_id="v", staging_target_path=staging, volume_context=context
        )
        assert code_of(node.NodeStageVolume, no_capability) == invalid
        block_stage = csi_pb2.NodeStageVolumeRequest(
            volume_id="v", staging_target_path=staging, volume_capability=block, volume_context=context
        )
        assert code_of(node.NodeStageVolume, block_stage) == invalid
        no_context = csi_pb2.NodeStageVolumeRequest(
            volume_id="v", staging_target_path=staging, volume_capability=mount_capability()
        )
        assert code_of(node.NodeStageVolume, no_context) == invalid
        no_mode = csi_pb2.NodePublishVolumeRequest(
            volume_id="v",
            staging_target_path=staging,
            target_path=target,
            volume_capability=csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume()),
        )
        assert code_of(node.NodePublishVolume, no_mode) == invalid
        unstaged = csi_pb2.NodePublishVolumeRequest(
            volume_id="v", staging_target_path=staging, target_path=target, volume_capability=mount_capability()
        )
        assert code_of(node.NodePublishVolume, unstaged) == grpc.StatusCode.FAILED_PRECONDITION
        stats = csi_pb2.NodeGetVolumeStatsRequest(volume_id="v", volume_path=target)
        assert code_of(node.NodeGetVolumeStats, stats) == grpc.StatusCode.NOT_FOUND
        assert code_of(node.NodeGetVolumeStats, csi_pb2.NodeGetVolumeStatsRequest(volume_id="v")) == invalid
        # Unpublish and unstage of something never staged are idempotent successes.
        node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id="v", target_path=target))
        node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id="v", staging_target_path=staging))


def test_metrics_port_serves_the_supervisor_gauges(plugin_root: Path) -> None:
    port = free_port()
    plugin = NodePlugin(plugin_root, mode="node", extra_args=["--metrics-port", str(port)])
    try:
        plugin.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        assert re.search(r'razorfs_node_volumes\{node="[^"]*",state="Mounted"\} 0\.0', text)
        assert re.search(r'razorfs_node_ready\{node="[^"]*"\} 1\.0', text)
    finally:
        plugin.cleanup()
