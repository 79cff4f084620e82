"""The operator's client of the node plugins' NodeAdmin gRPC API (razorfs.v1.NodeAdmin): which nodes
have a volume staged and in what state, and asking those nodes to warm paths into their cache.
Every call carries `authorization: Bearer <token>`; the token never appears in messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import grpc.aio

from razorfs_wire.razorfs.v1 import node_admin_pb2, node_admin_pb2_grpc

from .cluster import NodePluginPod

_KNOWN_STATES = {"Mounted", "Recovering", "Failed", "Unmounting"}


@dataclass(frozen=True)
class NodeReport:
    """One node's answer about one volume; `state` Unreachable when the node did not answer."""

    node_name: str
    address: str
    state: str
    cached_bytes: int = 0
    dirty_bytes: int = 0
    last_error: str = ""


class NodeAdminClient:
    def __init__(self, token: str, port: int, timeout_s: float) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._port = port
        self._timeout_s = timeout_s

    def _address(self, pod: NodePluginPod) -> str:
        host = f"[{pod.pod_ip}]" if ":" in pod.pod_ip else pod.pod_ip
        return f"{host}:{self._port}"

    async def volume_on_nodes(self, pods: Sequence[NodePluginPod], volume_id: str) -> list[NodeReport]:
        """Reports from every node plugin that has `volume_id` staged, plus Unreachable ones."""
        reports = []
        for pod in pods:
            address = self._address(pod)
            try:
                async with grpc.aio.insecure_channel(address) as channel:
                    stub = node_admin_pb2_grpc.NodeAdminStub(channel)
                    reply = await stub.ListVolumes(
                        node_admin_pb2.ListVolumesRequest(), metadata=self._metadata, timeout=self._timeout_s
                    )
            except grpc.aio.AioRpcError as exc:
                reports.append(
                    NodeReport(
                        pod.node_name,
                        address,
                        "Unreachable",
                        last_error=f"NodeAdmin {exc.code().name}: {exc.details()}",
                    )
                )
                continue
            for volume in reply.volumes:
                if volume.volume_id != volume_id:
                    continue
                reports.append(
                    NodeReport(
                        node_name=pod.node_name,
                        address=address,
                        state=volume.state if volume.state in _KNOWN_STATES else "Failed",
                        cached_bytes=volume.cached_bytes,
                        dirty_bytes=volume.dirty_bytes,
                        last_error=volume.last_error,
                    )
                )
        return reports

    async def warm(self, address: str, volume_id: str, paths: Sequence[str], timeout_s: float) -> int:
        """Streams WarmVolume to completion; returns the files warmed. Raises grpc.aio.AioRpcError."""
        files_done = 0
        async with grpc.aio.insecure_channel(address) as channel:
            stub = node_admin_pb2_grpc.NodeAdminStub(channel)
            call = stub.WarmVolume(
                node_admin_pb2.WarmVolumeRequest(volume_id=volume_id, paths=list(paths)),
                metadata=self._metadata,
                timeout=timeout_s,
            )
            async for progress in call:
                files_done = progress.files_done
        return files_done
