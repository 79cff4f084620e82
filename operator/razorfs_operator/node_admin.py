"""The operator's client of the node plugins' NodeAdmin gRPC API (razorfs.v1.NodeAdmin): which nodes
have a volume staged and in what state, and asking those nodes to warm paths into their cache.
Every call carries `authorization: Bearer <token>`; the token never appears in messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import grpc.aio

from razorfs_wire.razorfs.v1 import node_admin_pb2, node_admin_pb2_grpc

from .cluster import NodePluginPod
from .recent_listings import RecentListings

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


# One channel per node plugin address, reused by every volume's resync (a channel per call cost
# a TCP and HTTP/2 handshake on both sides); one unused this long is closed.
CHANNEL_IDLE_CLOSE_S = 300.0
# A node plugin that restarts is reachable again within seconds, not after gRPC's default
# reconnect backoff of up to two minutes.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class NodeAdminClient:
    def __init__(self, token: str, port: int, timeout_s: float) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._port = port
        self._timeout_s = timeout_s
        self._channels: dict[str, tuple[grpc.aio.Channel, float]] = {}
        self._listings: RecentListings[node_admin_pb2.ListVolumesResponse] = RecentListings()

    def _channel(self, address: str) -> grpc.aio.Channel:
        now = time.monotonic()
        for other, (channel, last_used) in list(self._channels.items()):
            if now - last_used > CHANNEL_IDLE_CLOSE_S:
                del self._channels[other]
                asyncio.get_running_loop().create_task(channel.close(None))  # unused: no grace
        if address in self._channels:
            channel = self._channels[address][0]
        else:
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._channels[address] = (channel, now)
        return channel

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel, _ in channels.values():
            await channel.close(None)

    def _address(self, pod: NodePluginPod) -> str:
        host = f"[{pod.pod_ip}]" if ":" in pod.pod_ip else pod.pod_ip
        return f"{host}:{self._port}"

    async def _list_volumes(self, address: str) -> node_admin_pb2.ListVolumesResponse:
        """ListVolumes of one node, shared by the resyncs of all volumes for a moment: a node
        answers with every volume it has staged, each with its daemon's figures, so one call per
        volume would cost the node O(volumes²) per resync round."""

        async def ask() -> node_admin_pb2.ListVolumesResponse:
            stub = node_admin_pb2_grpc.NodeAdminStub(self._channel(address))
            reply: node_admin_pb2.ListVolumesResponse = await stub.ListVolumes(
                node_admin_pb2.ListVolumesRequest(), metadata=self._metadata, timeout=self._timeout_s
            )
            return reply

        return await self._listings.get(address, ask)

    async def volume_on_nodes(self, pods: Sequence[NodePluginPod], volume_id: str) -> list[NodeReport]:
        """Reports from every node plugin that has `volume_id` staged, plus Unreachable ones."""
        addresses = [self._address(pod) for pod in pods]
        replies = await asyncio.gather(*(self._list_volumes(a) for a in addresses), return_exceptions=True)
        reports = []
        for pod, address, reply in zip(pods, addresses, replies, strict=True):
            if isinstance(reply, grpc.aio.AioRpcError):
                reports.append(
                    NodeReport(
                        pod.node_name,
                        address,
                        "Unreachable",
                        last_error=f"NodeAdmin {reply.code().name}: {reply.details()}",
                    )
                )
                continue
            if isinstance(reply, BaseException):
                raise reply
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
        stub = node_admin_pb2_grpc.NodeAdminStub(self._channel(address))
        call = stub.WarmVolume(
            node_admin_pb2.WarmVolumeRequest(volume_id=volume_id, paths=list(paths)),
            metadata=self._metadata,
            timeout=timeout_s,
        )
        async for progress in call:
            files_done = progress.files_done
        return files_done
