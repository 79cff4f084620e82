"""The CSI calls kubelet makes for one volume, with kubelet's path layout under the test's
kubelet dir: stage at plugins/kubernetes.io/csi/<driver>/<sha256>/globalmount, publish at
pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from razorfs.volume_spec import CSI_DRIVER_NAME
from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc
from tests.realparts.s3server import S3Server

Mode = csi_pb2.VolumeCapability.AccessMode
CALL_TIMEOUT_S = 120.0


def capability(
    mode: int = Mode.MULTI_NODE_MULTI_WRITER, mount_group: str = "", mount_flags: tuple[str, ...] = ()
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(volume_mount_group=mount_group, mount_flags=mount_flags),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


@dataclass
class KubeletVolume:
    kubelet_dir: Path
    volume_id: str
    context: dict[str, str]
    secrets: dict[str, str]
    targets: list[Path] = field(default_factory=list)
    mount_group: str = ""  # the pod's fsGroup, passed as VolumeCapability.mount.volume_mount_group
    mount_flags: tuple[str, ...] = ()  # the PV's mountOptions

    @classmethod
    def on_s3(cls, kubelet_dir: Path, s3: S3Server, bucket: str, prefix: str, **context: str) -> KubeletVolume:
        return cls(
            kubelet_dir,
            volume_id=f"static-{bucket}-{prefix}",
            context={
                "endpoint": s3.endpoint_url,
                "bucket": bucket,
                "prefix": prefix,
                "region": s3.region,
                "forcePathStyle": "true",
                **context,
            },
            secrets={"accessKeyID": s3.access_key, "secretAccessKey": s3.secret_key},
        )

    @property
    def staging_path(self) -> Path:
        digest = hashlib.sha256(self.volume_id.encode()).hexdigest()[:16]
        return self.kubelet_dir / "plugins" / "kubernetes.io" / "csi" / CSI_DRIVER_NAME / digest / "globalmount"

    def target_for(self, pod: str) -> Path:
        return self.kubelet_dir / "pods" / pod / "volumes" / "kubernetes.io~csi" / self.volume_id / "mount"

    def stage(self, node: csi_pb2_grpc.NodeStub) -> None:
        self.staging_path.parent.mkdir(parents=True, exist_ok=True)  # kubelet creates the parent
        node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=self.volume_id,
                staging_target_path=str(self.staging_path),
                volume_capability=capability(mount_group=self.mount_group, mount_flags=self.mount_flags),
                volume_context=self.context,
                secrets=self.secrets,
            ),
            timeout=CALL_TIMEOUT_S,
        )

    def publish(self, node: csi_pb2_grpc.NodeStub, pod: str, read_only: bool = False) -> Path:
        target = self.target_for(pod)
        target.parent.mkdir(parents=True, exist_ok=True)
        node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=self.volume_id,
                staging_target_path=str(self.staging_path),
                target_path=str(target),
                volume_capability=capability(mount_group=self.mount_group, mount_flags=self.mount_flags),
                readonly=read_only,
                volume_context=self.context,
            ),
            timeout=CALL_TIMEOUT_S,
        )
        self.targets.append(target)
        return target

    def unpublish(self, node: csi_pb2_grpc.NodeStub, target: Path) -> None:
        node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=self.volume_id, target_path=str(target)),
            timeout=CALL_TIMEOUT_S,
        )

    def unstage(self, node: csi_pb2_grpc.NodeStub) -> None:
        node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=self.volume_id, staging_target_path=str(self.staging_path)),
            timeout=CALL_TIMEOUT_S,
        )


def rpc_code(error: BaseException) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, grpc.RpcError) else None  # type: ignore[attr-defined,no-any-return]
