"""Hostile or odd input to the CSI plugin (`razorfs-node`, started as the CSI tests start it):
huge and control-character volume IDs and paths, symlinks leading out of the kubelet dir, traversal,
huge and unicode names in CreateVolume get INVALID_ARGUMENT (or a safe volume), never INTERNAL or a
dead plugin; unicode volume IDs and prefixes that are valid work end to end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from razorfs.csi.volume_handle import parse_volume_id
from razorfs_wire.csi.v1 import csi_pb2
from tests.integration.csi.kubelet_calls import KubeletVolume, capability
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.fusemount import is_mounted, require_fuse
from tests.realparts.s3server import S3Server
from tests.reliability.s3_contents import objects_under

pytestmark = [pytest.mark.s3, pytest.mark.fuse]
INVALID = grpc.StatusCode.INVALID_ARGUMENT
GiB = 1024**3


@pytest.fixture
def csi_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodePlugin]:
    require_fuse()
    plugin = NodePlugin(tmp_path_factory.mktemp("rzn"))
    try:
        plugin.start()
        yield plugin
    finally:
        plugin.cleanup()


def code_of(call: Any, request: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=60)
    return info.value.code()  # type: ignore[no-any-return,attr-defined]


def probe_ready(plugin: NodePlugin) -> bool:
    with plugin.channel() as channel:
        return bool(plugin.identity(channel).Probe(csi_pb2.ProbeRequest(), timeout=10).ready.value)


def test_huge_and_control_character_volume_ids_are_invalid_argument(csi_node: NodePlugin) -> None:
    staging = str(csi_node.kubelet_dir / "plugins" / "stage")
    target = str(csi_node.kubelet_dir / "pods" / "p1" / "mount")
    context = {"endpoint": "http://127.0.0.1:1", "bucket": "bucket-one"}
    with csi_node.channel() as channel:
        node = csi_node.node(channel)
        for bad_id in ["v" * 1025, "v" * 1_000_000, "vol\nInjected: log line", "vol\x7f", "vol\\..\\x", "./vol"]:
            stage = csi_pb2.NodeStageVolumeRequest(
                volume_id=bad_id, staging_target_path=staging, volume_capability=capability(), volume_context=context
            )
            assert code_of(node.NodeStageVolume, stage) == INVALID, repr(bad_id[:40])
            publish = csi_pb2.NodePublishVolumeRequest(
                volume_id=bad_id, staging_target_path=staging, target_path=target, volume_capability=capability()
            )
            assert code_of(node.NodePublishVolume, publish) == INVALID, repr(bad_id[:40])
            unstage = csi_pb2.NodeUnstageVolumeRequest(volume_id=bad_id, staging_target_path=staging)
            assert code_of(node.NodeUnstageVolume, unstage) == INVALID, repr(bad_id[:40])
            stats = csi_pb2.NodeGetVolumeStatsRequest(volume_id=bad_id, volume_path=target)
            assert code_of(node.NodeGetVolumeStats, stats) in (INVALID, grpc.StatusCode.NOT_FOUND)
    assert probe_ready(csi_node)


def test_huge_paths_and_symlinks_out_of_the_kubelet_dir_are_invalid_argument(
    csi_node: NodePlugin, tmp_path: Path
) -> None:
    kubelet = csi_node.kubelet_dir
    outside = tmp_path / "outside"
    outside.mkdir()
    (kubelet / "pods").mkdir(parents=True, exist_ok=True)
    (kubelet / "pods" / "evil").symlink_to(outside)  # a path inside that leads outside
    context = {"endpoint": "http://127.0.0.1:1", "bucket": "bucket-one"}
    bad_paths = [
        str(kubelet / "pods" / "evil" / "mount"),
        str(kubelet / "pods" / ("p" * 5000) / "mount"),
        str(kubelet / "pods" / "p1\n" / "mount"),
        str(kubelet) + "/pods/../../outside",
        str(kubelet),  # the kubelet dir itself is not a mount target
    ]
    with csi_node.channel() as channel:
        node = csi_node.node(channel)
        for path in bad_paths:
            stage = csi_pb2.NodeStageVolumeRequest(
                volume_id="vol-1", staging_target_path=path, volume_capability=capability(), volume_context=context
            )
            assert code_of(node.NodeStageVolume, stage) == INVALID, path[:80]
            publish = csi_pb2.NodePublishVolumeRequest(
                volume_id="vol-1", staging_target_path=path, target_path=path, volume_capability=capability()
            )
            assert code_of(node.NodePublishVolume, publish) == INVALID, path[:80]
    assert not is_mounted(outside / "mount") and list(outside.iterdir()) == []
    assert probe_ready(csi_node)


def test_create_volume_with_traversal_huge_or_unicode_names_stays_under_the_base_prefix(
    csi_node: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    names = ["../../escape", "a/../../b", "..", "n" * 10_000, "pvc-ünïcødé-✓", "pvc\u202egnp.exe"]
    with csi_node.channel() as channel:
        controller = csi_node.controller(channel)
        for name in names:
            request = csi_pb2.CreateVolumeRequest(
                name=name,
                capacity_range=csi_pb2.CapacityRange(required_bytes=GiB),
                volume_capabilities=[capability()],
                parameters={
                    "endpoint": s3_server.endpoint_url,
                    "bucket": bucket,
                    "region": s3_server.region,
                    "forcePathStyle": "true",
                    "prefix": "base",
                },
                secrets={"accessKeyID": s3_server.access_key, "secretAccessKey": s3_server.secret_key},
            )
            try:
                volume = controller.CreateVolume(request, timeout=60).volume
            except grpc.RpcError as err:
                assert err.code() == INVALID, f"{name[:40]!r}: {err.code()}"  # type: ignore[attr-defined]
                continue
            prefix = parse_volume_id(volume.volume_id).prefix
            assert prefix.startswith("base/") and ".." not in prefix.split("/"), (name[:40], prefix)
            assert len(prefix.encode()) <= 1024, name[:40]
    assert all(key.startswith("base/") for key in objects_under(s3_client, bucket, ""))
    assert probe_ready(csi_node)


def test_unicode_volume_id_and_prefix_stage_publish_and_reach_s3(
    csi_node: NodePlugin, s3_server: S3Server, s3_client: Any, bucket: str
) -> None:
    volume = KubeletVolume.on_s3(csi_node.kubelet_dir, s3_server, bucket, "données/✓ vol")
    volume.volume_id = "static-ünïcødé-✓"
    with csi_node.channel() as channel:
        node = csi_node.node(channel)
        volume.stage(node)
        target = volume.publish(node, "pod-ü")
        (target / "fichier-é.txt").write_bytes(b"bonjour\n")
        volume.unpublish(node, target)
        volume.unstage(node)
    assert objects_under(s3_client, bucket, "données/✓ vol/").get("fichier-é.txt") == b"bonjour\n"
    assert not os.path.ismount(target)


HOSTILE_MOUNT_FLAGS = [
    ["x" * 100_000],
    ["uid=" + "9" * 10_000],
    ["ro\nInjected: log line"],
    ["=", "ro"],
    ["cache-size=1Ti\x00"],
    ["dir-mode=\uff10\uff17\uff15\uff15"],  # fullwidth digits
    ["uid=\u0663"],  # an Arabic-Indic digit: str.isdigit() says yes, a uid it is not
    ["metadata-ttl=1s", "metadata-ttl=2s"],
    ["rw"] * 10_000 + ["ro"],
]


@pytest.mark.parametrize("flags", HOSTILE_MOUNT_FLAGS, ids=[str(i) for i in range(len(HOSTILE_MOUNT_FLAGS))])
def test_hostile_mount_flags_are_invalid_argument_at_stage_publish_and_create(
    csi_node: NodePlugin, s3_server: S3Server, bucket: str, flags: list[str]
) -> None:
    volume = KubeletVolume.on_s3(csi_node.kubelet_dir, s3_server, bucket, "hostile-flags")
    bad = capability(mount_flags=tuple(flags))
    with csi_node.channel() as channel:
        node, controller = csi_node.node(channel), csi_node.controller(channel)
        volume.staging_path.parent.mkdir(parents=True, exist_ok=True)
        stage = csi_pb2.NodeStageVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(volume.staging_path),
            volume_capability=bad,
            volume_context=volume.context,
            secrets=volume.secrets,
        )
        assert code_of(node.NodeStageVolume, stage) == INVALID
        publish = csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(volume.staging_path),
            target_path=str(volume.target_for("p1")),
            volume_capability=bad,
        )
        assert code_of(node.NodePublishVolume, publish) == INVALID
        create = csi_pb2.CreateVolumeRequest(
            name="pvc-hostile-flags", volume_capabilities=[bad], parameters=volume.context, secrets=volume.secrets
        )
        assert code_of(controller.CreateVolume, create) == INVALID
    assert probe_ready(csi_node) and csi_node.daemon_pids() == []
    assert objects_under(s3_server.client(), bucket, "") == {}


@pytest.mark.parametrize(
    "template",
    [
        "${" * 5000,
        "${pvc.metadata.name}\n${x}",
        "${pvc.metadata.name}/\x00",
        "ü/${pvc.metadata.name}",
        "${pvc.metadata.name",
    ],
)
def test_hostile_prefix_templates_are_invalid_argument_before_s3_is_touched(
    csi_node: NodePlugin, s3_server: S3Server, bucket: str, template: str
) -> None:
    parameters = {
        "endpoint": s3_server.endpoint_url,
        "bucket": bucket,
        "forcePathStyle": "true",
        "prefixTemplate": template,
        "csi.storage.k8s.io/pvc/name": "data",
    }
    create = csi_pb2.CreateVolumeRequest(
        name="pvc-hostile-template",
        volume_capabilities=[capability()],
        parameters=parameters,
        secrets={"accessKeyID": s3_server.access_key, "secretAccessKey": s3_server.secret_key},
    )
    with csi_node.channel() as channel:
        assert code_of(csi_node.controller(channel).CreateVolume, create) == INVALID
    assert probe_ready(csi_node)
    assert objects_under(s3_server.client(), bucket, "") == {}
