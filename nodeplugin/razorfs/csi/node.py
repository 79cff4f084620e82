"""CSI Node service: argument checks and translation of CSI requests into supervisor calls.

Staging and target paths must lie inside the kubelet directory the plugin was given; the stage
secrets become the mount daemon's credentials and are never logged. The capability's mount flags
(a StorageClass's or PV's mountOptions, see mount_flags.py) override the volume context on stage
and make a publish read-only with `ro`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from razorfs.csi import validation
from razorfs.csi.errors import InvalidArgument, Unavailable, translate_errors
from razorfs.csi.mount_records import StageRequest
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.pod_identity import pod_identity
from razorfs.csi.supervisor import Supervisor
from razorfs.volume_spec import AUTHENTICATION_POD, ContextKey
from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc

RpcType = csi_pb2.NodeServiceCapability.RPC.Type
POD_NAMESPACE_KEY = "csi.storage.k8s.io/pod.namespace"
POD_NAME_KEY = "csi.storage.k8s.io/pod.name"
POD_UID_KEY = "csi.storage.k8s.io/pod.uid"
Unit = csi_pb2.VolumeUsage.Unit


def _mount_group(capability: csi_pb2.VolumeCapability) -> int | None:
    group = capability.mount.volume_mount_group
    if not group:
        return None
    if not group.isdigit():
        raise InvalidArgument(f"volume_mount_group {group!r} must be a numeric group ID")
    return int(group)


def _pod(context: Mapping[str, str]) -> dict[str, str] | None:
    """The workload pod a publish is for (the CSIDriver's podInfoOnMount), told of its mount's fate."""
    namespace, name = context.get(POD_NAMESPACE_KEY, ""), context.get(POD_NAME_KEY, "")
    if not namespace or not name:
        return None
    return {"namespace": namespace, "name": name, "uid": context.get(POD_UID_KEY, "")}


class NodeService(csi_pb2_grpc.NodeServicer):  # type: ignore[misc]
    def __init__(self, supervisor: Supervisor, node_id: str, kubelet_dir: Path):
        self.supervisor = supervisor
        self.node_id = node_id
        self.kubelet_dir = kubelet_dir

    def _require_ready(self) -> None:
        if not self.supervisor.ready:
            raise Unavailable("the plugin is still re-adopting its volumes")

    @translate_errors
    async def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodeStageVolumeResponse:
        volume_id = validation.check_volume_id(request.volume_id)
        staging = validation.check_kubelet_path("staging_target_path", request.staging_target_path, self.kubelet_dir)
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        flags = validation.check_capability(request.volume_capability)
        settings = MountSettings.from_context(flags.applied_to(request.volume_context))
        self._require_ready()
        await self.supervisor.stage(
            StageRequest(
                volume_id=volume_id,
                staging_path=staging,
                settings=settings,
                credentials=Credentials.from_secrets(request.secrets),
                read_only=validation.is_read_only_mode(request.volume_capability),
                mount_group=_mount_group(request.volume_capability),
                capability=request.volume_capability.SerializeToString(deterministic=True).hex(),
                razor_volume=settings.volume_name,
                mount_pod=settings.mount_pod,
            )
        )
        return csi_pb2.NodeStageVolumeResponse()

    @translate_errors
    async def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        volume_id = validation.check_volume_id(request.volume_id)
        staging = validation.check_kubelet_path("staging_target_path", request.staging_target_path, self.kubelet_dir)
        self._require_ready()
        await self.supervisor.unstage(volume_id, staging)
        return csi_pb2.NodeUnstageVolumeResponse()

    @translate_errors
    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodePublishVolumeResponse:
        volume_id = validation.check_volume_id(request.volume_id)
        target = validation.check_kubelet_path("target_path", request.target_path, self.kubelet_dir)
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        flags = validation.check_capability(request.volume_capability)
        # Staging is required (we advertise STAGE_UNSTAGE_VOLUME): the bind source is the stage.
        staging = validation.check_kubelet_path("staging_target_path", request.staging_target_path, self.kubelet_dir)
        read_only = request.readonly or flags.read_only or validation.is_read_only_mode(request.volume_capability)
        volume_context = request.volume_context
        identity = None
        # Kubelet sends the tokens with every publish of the driver's volumes; only a volume that
        # signs as its pods (its PV attributes are in the context too) looks at them.
        if volume_context.get(ContextKey.AUTHENTICATION, "").strip() == AUTHENTICATION_POD:
            identity = pod_identity(volume_context, volume_context.get(ContextKey.AUDIENCE, "").strip())
        self._require_ready()
        await self.supervisor.publish(
            volume_id,
            staging,
            target,
            read_only,
            _mount_group(request.volume_capability),
            _pod(volume_context),
            identity,
        )
        return csi_pb2.NodePublishVolumeResponse()

    @translate_errors
    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        volume_id = validation.check_volume_id(request.volume_id)
        target = validation.check_kubelet_path("target_path", request.target_path, self.kubelet_dir)
        self._require_ready()
        await self.supervisor.unpublish(volume_id, target)
        return csi_pb2.NodeUnpublishVolumeResponse()

    @translate_errors
    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        volume_id = validation.check_volume_id(request.volume_id)
        if not request.volume_path:
            raise InvalidArgument("volume_path is required")
        volume = self.supervisor.mount_at(volume_id, request.volume_path.rstrip("/"))
        if volume.state.value != "Mounted":
            condition = csi_pb2.VolumeCondition(abnormal=True, message=f"{volume.state.value}: {volume.last_error}")
            return csi_pb2.NodeGetVolumeStatsResponse(volume_condition=condition)
        stats = await self.supervisor.stats(volume_id, mount=volume)
        limit = int(stats.get("cache_limit_bytes", 0))
        used = int(stats.get("cached_bytes", 0))
        files = int(stats.get("files_cached", 0))
        usage = [
            # The local cache is the node's share of the volume; S3 itself has no size limit.
            csi_pb2.VolumeUsage(unit=Unit.BYTES, total=limit, used=used, available=max(limit - used, 0)),
            csi_pb2.VolumeUsage(unit=Unit.INODES, used=files),
        ]
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=usage, volume_condition=csi_pb2.VolumeCondition(abnormal=False, message="serving")
        )

    @translate_errors
    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        rpc = csi_pb2.NodeServiceCapability.RPC
        kinds = [
            RpcType.STAGE_UNSTAGE_VOLUME,
            RpcType.GET_VOLUME_STATS,
            RpcType.VOLUME_CONDITION,
            RpcType.SINGLE_NODE_MULTI_WRITER,
            RpcType.VOLUME_MOUNT_GROUP,
        ]
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=rpc(type=kind)) for kind in kinds]
        )

    @translate_errors
    async def NodeGetInfo(
        self, request: csi_pb2.NodeGetInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self.node_id)
