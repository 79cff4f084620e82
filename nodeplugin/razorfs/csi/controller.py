"""CSI Controller service: dynamic provisioning of a prefix per volume in a StorageClass's bucket.

CreateVolume writes the volume's directory marker and, beside the prefix, a small record of its
CSI name and capacity, which makes repeated calls idempotent and a conflicting repeat
ALREADY_EXISTS. ControllerExpandVolume records a larger capacity (advisory: S3 has no size, and
nothing on the node needs to grow). DeleteVolume deletes the record and every object under the
prefix. S3 calls are blocking boto3 calls and run on worker threads."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

import grpc

from razorfs.csi import validation
from razorfs.csi.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, translate_errors
from razorfs.csi.mount_settings import Credentials, MountSettings
from razorfs.csi.prefix_template import PREFIX_TEMPLATE_PARAMETER, PrefixTemplate
from razorfs.csi.volume_handle import VolumeHandle, parse_volume_id
from razorfs.store.errors import BucketNotFound, ObjectNotFound
from razorfs.store.prefix_delete import delete_prefix
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
    return S3Store(settings, reuse_client=True)


def _read_record(store: S3Store, handle: VolumeHandle) -> dict[str, Any]:
    try:
        record = json.loads(store.get_range(handle.record_key, 0, _RECORD_MAX_BYTES))
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise FailedPrecondition(f"{handle.record_key} exists and is not a RazorFS volume record")
    return record


def requested_capacity(capacity_range: csi_pb2.CapacityRange) -> int:
    required, limit = capacity_range.required_bytes, capacity_range.limit_bytes
    if required < 0 or limit < 0:
        raise InvalidArgument("capacity_range must not be negative")
    if limit and required > limit:
        raise InvalidArgument("capacity_range.required_bytes exceeds limit_bytes")
    # S3 has no size limit; the capacity is what was asked for, reported back unchanged.
    return required or limit


def volume_parameters(parameters: Mapping[str, str]) -> dict[str, str]:
    """The StorageClass parameters that describe the volume (its volume context), checked; unknown
    keys are refused so a typo does not silently fall back to a default."""
    settings = {
        k: v
        for k, v in parameters.items()
        if not k.startswith(_PROVISIONER_KEY_PREFIX) and k != PREFIX_TEMPLATE_PARAMETER
    }
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
        requested_capacity(request.capacity_range)
        parameters = volume_parameters(request.parameters)
        template = PrefixTemplate.parse(request.parameters.get(PREFIX_TEMPLATE_PARAMETER, ""))
        settings = MountSettings.from_context(parameters)
        handle = VolumeHandle(
            endpoint=settings.endpoint,
            region=settings.region or "",
            force_path_style=settings.force_path_style,
            bucket=settings.bucket,
            prefix=template.render(settings.prefix, request.name, request.parameters),
        )
        store = _store_for(handle, request.secrets)
        capacity = await asyncio.to_thread(self._ensure_volume, store, handle, request.name, request.capacity_range)
        volume_context = {**parameters, ContextKey.PREFIX: handle.prefix}
        log.info("provisioned volume %s for %s", handle.volume_id, request.name)
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(capacity_bytes=capacity, volume_id=handle.volume_id, volume_context=volume_context)
        )

    @staticmethod
    def _ensure_volume(store: S3Store, handle: VolumeHandle, name: str, capacity_range: csi_pb2.CapacityRange) -> int:
        """The volume's capacity: the one asked for when new, the recorded one (perhaps expanded
        since) when the name exists with a capacity that fits the range."""
        capacity = requested_capacity(capacity_range)
        try:
            existing = _read_record(store, handle)
        except ObjectNotFound:
            record = {"name": name, "capacity_bytes": capacity}
            # The marker first: a crash in between leaves no record, and the retry writes both.
            store.put_bytes(handle.marker_key, b"", {})
            store.put_bytes(handle.record_key, json.dumps(record).encode(), {})
            return capacity
        except FailedPrecondition as exc:
            raise AlreadyExists(str(exc)) from None
        if existing.get("name") != name:
            raise AlreadyExists(f"prefix {handle.prefix} already belongs to volume {existing.get('name')!r}")
        recorded = int(existing.get("capacity_bytes", 0))
        limit = capacity_range.limit_bytes
        if recorded < capacity_range.required_bytes or (limit and recorded > limit):
            raise AlreadyExists(f"volume {name} exists with capacity {recorded} bytes, not {capacity}")
        return recorded

    @translate_errors
    async def ControllerExpandVolume(
        self, request: csi_pb2.ControllerExpandVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.ControllerExpandVolumeResponse:
        validation.check_volume_id(request.volume_id)
        if not request.HasField("capacity_range"):
            raise InvalidArgument("capacity_range is required")
        capacity = requested_capacity(request.capacity_range)
        if capacity <= 0:
            raise InvalidArgument("capacity_range must name a size")
        if request.HasField("volume_capability"):
            validation.check_capability(request.volume_capability)
        handle = parse_volume_id(request.volume_id)
        if handle is None:
            # A RazorVolume's PV: its size lives in spec.capacity, which the operator keeps.
            log.info(
                "ControllerExpandVolume of static volume %s to %d bytes: nothing to record", request.volume_id, capacity
            )
        elif not request.secrets:
            # Never an ambient credential: without the StorageClass's controller-expand secret the
            # PV alone records the new size (the record only makes a repeated CreateVolume idempotent).
            log.info(
                "ControllerExpandVolume of %s without secrets: the record keeps its old capacity", request.volume_id
            )
        else:
            store = _store_for(handle, request.secrets)
            capacity = await asyncio.to_thread(self._record_capacity, store, handle, capacity)
        log.info("expanded volume %s to %d bytes", request.volume_id, capacity)
        return csi_pb2.ControllerExpandVolumeResponse(capacity_bytes=capacity, node_expansion_required=False)

    @staticmethod
    def _record_capacity(store: S3Store, handle: VolumeHandle, capacity: int) -> int:
        """Raises the recorded capacity to `capacity` (never lowers it) and returns the result."""
        try:
            record = _read_record(store, handle)
        except (ObjectNotFound, BucketNotFound):
            raise NotFound(f"volume {handle.volume_id} does not exist") from None
        recorded = int(record.get("capacity_bytes", 0))
        if recorded >= capacity:
            return recorded
        store.put_bytes(handle.record_key, json.dumps({**record, "capacity_bytes": capacity}).encode(), {})
        return capacity

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
        deleted = await asyncio.to_thread(self._delete_volume, store, handle)
        log.info("deleted volume %s (%d objects)", request.volume_id, deleted)
        return csi_pb2.DeleteVolumeResponse()

    @staticmethod
    def _delete_volume(store: S3Store, handle: VolumeHandle) -> int:
        """Deletes the record beside the prefix, then every object under it; returns the count."""
        try:
            store.delete(handle.record_key)
        except BucketNotFound:
            return 0
        return delete_prefix(store, handle.key_prefix)

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
        kinds = [RpcType.CREATE_DELETE_VOLUME, RpcType.SINGLE_NODE_MULTI_WRITER, RpcType.EXPAND_VOLUME]
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=rpc(type=kind)) for kind in kinds]
        )
