"""CSI Identity service: the driver's name and version, whether a controller (with online
expansion) runs in this process, and readiness (not ready until the supervisor has re-adopted every recorded volume)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from razorfs import __version__
from razorfs.csi.errors import translate_errors
from razorfs.volume_spec import CSI_DRIVER_NAME
from razorfs_wire.csi.v1 import csi_pb2, csi_pb2_grpc


class IdentityService(csi_pb2_grpc.IdentityServicer):  # type: ignore[misc]
    def __init__(self, serves_controller: bool, is_ready: Callable[[], bool]):
        self.serves_controller = serves_controller
        self.is_ready = is_ready

    @translate_errors
    async def GetPluginInfo(
        self, request: csi_pb2.GetPluginInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=CSI_DRIVER_NAME, vendor_version=__version__)

    @translate_errors
    async def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        capabilities = []
        if self.serves_controller:
            service = csi_pb2.PluginCapability.Service(type=csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE)
            capabilities.append(csi_pb2.PluginCapability(service=service))
            # ControllerExpandVolume only records the size: safe while pods use the volume.
            expansion = csi_pb2.PluginCapability.VolumeExpansion(type=csi_pb2.PluginCapability.VolumeExpansion.ONLINE)
            capabilities.append(csi_pb2.PluginCapability(volume_expansion=expansion))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=capabilities)

    @translate_errors
    async def Probe(
        self, request: csi_pb2.ProbeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=self.is_ready()))
