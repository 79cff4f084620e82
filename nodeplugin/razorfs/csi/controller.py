"""CSI Controller service: dynamic provisioning of a prefix per volume in a StorageClass's bucket.

CreateVolume writes the volume's directory marker and, beside the prefix, a small record of its
CSI name and capacity, which makes repeated calls idempotent and a conflicting repeat
ALREADY_EXISTS. DeleteVolume deletes the record and every object under the prefix. S3 calls are
blocking boto3 calls and run on worker threads."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import grpc

from razorfs.csi import validation
from razorfs.csi.errors import AlreadyExists, InvalidArgument, NotFound, translate_errors
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.volume_handle import VolumeHandle, parse_volume_id, volume_prefix
from razorfs.store.errors import BucketNotFound, ObjectNotFound
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import S3Settings
from razorfs.volume_spec import ContextKey
from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc

log = logging.getLogger(__name__)

_RECORD_MAX_BYTES = 64 * 1024
# external-provisioner's own keys (secrets references, PVC/PV metadata) are not volume settings.
_PROVISIONER_KEY_PREFIX = "csi.storage.k8s.io/"
_KNOWN_PARAMETERS = frozenset(v for k, v in vars(ContextKey).items() if not k.startswith("_"))

RpcType = csi_pb2.ControllerServiceCapability.RPC.Type


def _store_for(handle: VolumeHandle, secrets: Mapping[str, str]) -> S3Store:
    credentials = Credentials.from_secrets(secrets)
    settings = S3Settings(
        bucket=handle.bucket,
        endpoint_url=handle.endpoint,
        region=handle.region or None,
        force_path_style=handle.force_path_style,
        access_key_id=credentials.access_key_id or None,
        secret_access_key=credentials.secret_access_key or None,
        session_token=credentials.session_token or None,
    )
    return S3Store(settings)


def requested_capacity(capacity_range: csi_pb2.CapacityRange) -> int:
    required, limit = capacity_range.required_bytes, capacity_range.limit_bytes
    if required < 0 or limit < 0:
        raise InvalidArgument("capacity_range must not be negative")
    if limit and required > limit:
        raise InvalidArgument("capacity_range.required_bytes exceeds limit_bytes")
    # S3 has no size limit; the capacity is what was asked for, reported back unchanged.
    return required or limit


def volume_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """The StorageClass parameters that describe the volume, checked; unknown keys are refused so
    a typo does not silently fall back to a default."""
    settings = {k: v for k, v in parameters.items() if not k.startswith(_PROVISIONER_KEY_PREFIX)}
    unknown = sorted(set(settings) - _KNOWN_PARAMETERS)
    if unknown:
        raise InvalidArgument(f"unknown StorageClass parameters: {', '.join(unknown)}")
    MountSettings.from_context(settings)
    return settings


class ControllerService(csi_pb2_grpc.ControllerServicer):  # type: ignore[misc]
    @translate_errors
    async def CreateVolume(
        self, request: csi_pb2.CreateVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.CreateVolumeResponse:
        if not request.name:
            raise InvalidArgument("name is required")
        validation.check_capabilities(request.volume_capabilities)
        if request.HasField("volume_content_source"):
            raise InvalidArgument("volume_content_source is not supported (no snapshots or clones)")
        capacity = requested_capacity(request.capacity_range)
        parameters = volume_parameters(request.parameters)
        settings = MountSettings.from_context(parameters)
        handle = VolumeHandle(
            endpoint=settings.endpoint,
            region=settings.region or "",
            force_path_style=settings.force_path_style,
            bucket=settings.bucket,
            prefix=volume_prefix(settings.prefix, request.name),
        )
        store = _store_for(handle, request.secrets)
        await asyncio.to_thread(self._ensure_volume, store, handle, request.name, capacity)
        volume_context = {**parameters, ContextKey.PREFIX: handle.prefix}
        log.info("provisioned volume %s for %s", handle.volume_id, request.name)
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(capacity_bytes=capacity, volume_id=handle.volume_id, volume_context=volume_context)
        )

    @staticmethod
    def _ensure_volume(store: S3Store, handle: VolumeHandle, name: str, capacity: int) -> None:
        try:
            existing = json.loads(store.get_range(handle.record_key, 0, _RECORD_MAX_BYTES))
        except ObjectNotFound:
            record = {"name": name, "capacity_bytes": capacity}
            # The marker first: a crash in between leaves no record, and the retry writes both.
            store.put_bytes(handle.marker_key, b"", {})
            store.put_bytes(handle.record_key, json.dumps(record).encode(), {})
            return
        except ValueError:
            raise AlreadyExists(f"{handle.record_key} exists and is not a RazorFS volume record") from None
        if existing.get("name") != name:
            raise AlreadyExists(f"prefix {handle.prefix} already belongs to volume {existing.get('name')!r}")
        if int(existing.get("capacity_bytes", 0)) != capacity:
            raise AlreadyExists(
                f"volume {name} exists with capacity {existing.get('capacity_bytes')} bytes, not {capacity}"
            )

    @translate_errors
    async def DeleteVolume(
        self, request: csi_pb2.DeleteVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.DeleteVolumeResponse:
        validation.check_volume_id(request.volume_id)
        handle = parse_volume_id(request.volume_id)
        if handle is None:
            # Not a volume we provisioned (or already gone): deleting is a no-op by the spec.
            log.info("DeleteVolume of foreign volume ID %s: nothing to delete", request.volume_id)
            return csi_pb2.DeleteVolumeResponse()
        store = _store_for(handle, request.secrets)
        deleted = await asyncio.to_thread(self._delete_prefix, store, handle)
        log.info("deleted volume %s (%d objects)", request.volume_id, deleted)
        return csi_pb2.DeleteVolumeResponse()

    @staticmethod
    def _delete_prefix(store: S3Store, handle: VolumeHandle) -> int:
        deleted = 0
        try:
            store.delete(handle.record_key)
            for page in store.list_pages(handle.key_prefix, delimiter=None):
                keys = [o.key for o in page.objects]
                if keys:
                    store.delete_many(keys)
                    deleted += len(keys)
        except BucketNotFound:
            return deleted
        return deleted

    @translate_errors
    async def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        validation.check_volume_id(request.volume_id)
        if not request.volume_capabilities:
            raise InvalidArgument("volume_capabilities is required")
        handle = parse_volume_id(request.volume_id)
        if handle is None:
            raise NotFound(f"volume {request.volume_id} does not exist")
        store = _store_for(handle, request.secrets)
        try:
            await asyncio.to_thread(store.head, handle.record_key)
        except (ObjectNotFound, BucketNotFound):
            raise NotFound(f"volume {request.volume_id} does not exist") from None
        reasons = [r for c in request.volume_capabilities if (r := validation.capability_unsupported_reason(c))]
        if reasons:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(reasons))
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    @translate_errors
    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        rpc = csi_pb2.ControllerServiceCapability.RPC
        kinds = [RpcType.CREATE_DELETE_VOLUME, RpcType.SINGLE_NODE_MULTI_WRITER]
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=rpc(type=kind)) for kind in kinds]
        )
