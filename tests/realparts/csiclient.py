"""The CSI calls a kubelet and external-provisioner make, over the plugin's unix socket, with the
kubelet's path conventions: stage at <kubelet-dir>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/
globalmount, publish at <kubelet-dir>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

# The kubelet's translation of Kubernetes access modes to CSI ones.
ACCESS_MODES = {
    "ReadWriteOnce": "SINGLE_NODE_WRITER",
    "ReadOnlyMany": "MULTI_NODE_READER_ONLY",
    "ReadWriteMany": "MULTI_NODE_MULTI_WRITER",
    "ReadWriteOncePod": "SINGLE_NODE_SINGLE_WRITER",
}
CALL_TIMEOUT_S = 120.0  # unstage flushes dirty data to S3 first: give it time, as kubelet does


def staging_path(kubelet_dir: Path, driver: str, volume_handle: str) -> Path:
    digest = hashlib.sha256(volume_handle.encode()).hexdigest()
    return kubelet_dir / "plugins" / "kubernetes.io" / "csi" / driver / digest / "globalmount"


@dataclass
class VolumeRequest:
    """What kubelet knows about one PV when it stages and publishes it."""

    volume_handle: str
    access_modes: list[str]
    volume_context: dict[str, str] = field(default_factory=dict)
    stage_secrets: dict[str, str] = field(default_factory=dict)
    mount_flags: list[str] = field(default_factory=list)
    read_only: bool = False


class CsiClient:
    def __init__(self, endpoint: str):
        from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc

        self.pb = csi_pb2
        # grpc understands unix:///abs/path directly.
        self.channel = grpc.insecure_channel(endpoint)
        self.identity = csi_pb2_grpc.IdentityStub(self.channel)
        self.node = csi_pb2_grpc.NodeStub(self.channel)
        self.controller = csi_pb2_grpc.ControllerStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def capability(self, access_modes: list[str], mount_flags: list[str]) -> Any:
        pb = self.pb
        mode_name = ACCESS_MODES[access_modes[0]] if access_modes else "SINGLE_NODE_WRITER"
        return pb.VolumeCapability(
            mount=pb.VolumeCapability.MountVolume(mount_flags=mount_flags),
            access_mode=pb.VolumeCapability.AccessMode(mode=pb.VolumeCapability.AccessMode.Mode.Value(mode_name)),
        )

    def plugin_name(self) -> str:
        return str(self.identity.GetPluginInfo(self.pb.GetPluginInfoRequest(), timeout=10).name)

    def probe(self) -> bool:
        response = self.identity.Probe(self.pb.ProbeRequest(), timeout=10)
        return not response.HasField("ready") or bool(response.ready.value)

    def stage(self, volume: VolumeRequest, staging: Path) -> None:
        self.node.NodeStageVolume(
            self.pb.NodeStageVolumeRequest(
                volume_id=volume.volume_handle,
                staging_target_path=str(staging),
                volume_capability=self.capability(volume.access_modes, volume.mount_flags),
                secrets=volume.stage_secrets,
                volume_context=volume.volume_context,
            ),
            timeout=CALL_TIMEOUT_S,
        )

    def unstage(self, volume_handle: str, staging: Path) -> None:
        self.node.NodeUnstageVolume(
            self.pb.NodeUnstageVolumeRequest(volume_id=volume_handle, staging_target_path=str(staging)),
            timeout=CALL_TIMEOUT_S,
        )

    def publish(self, volume: VolumeRequest, staging: Path, target: Path, pod_context: dict[str, str]) -> None:
        self.node.NodePublishVolume(
            self.pb.NodePublishVolumeRequest(
                volume_id=volume.volume_handle,
                staging_target_path=str(staging),
                target_path=str(target),
                volume_capability=self.capability(volume.access_modes, volume.mount_flags),
                readonly=volume.read_only,
                volume_context={**volume.volume_context, **pod_context},
            ),
            timeout=CALL_TIMEOUT_S,
        )

    def unpublish(self, volume_handle: str, target: Path) -> None:
        self.node.NodeUnpublishVolume(
            self.pb.NodeUnpublishVolumeRequest(volume_id=volume_handle, target_path=str(target)),
            timeout=CALL_TIMEOUT_S,
        )

    def create_volume(
        self,
        name: str,
        required_bytes: int,
        access_modes: list[str],
        parameters: dict[str, str],
        secrets: dict[str, str],
    ) -> Any:
        response = self.controller.CreateVolume(
            self.pb.CreateVolumeRequest(
                name=name,
                capacity_range=self.pb.CapacityRange(required_bytes=required_bytes),
                volume_capabilities=[self.capability(access_modes, [])],
                parameters=parameters,
                secrets=secrets,
            ),
            timeout=CALL_TIMEOUT_S,
        )
        return response.volume

    def delete_volume(self, volume_handle: str, secrets: dict[str, str]) -> None:
        self.controller.DeleteVolume(
            self.pb.DeleteVolumeRequest(volume_id=volume_handle, secrets=secrets), timeout=CALL_TIMEOUT_S
        )
