"""The operator's client of the node plugins' NodeAdmin gRPC API (razorfs.v1.NodeAdmin): which nodes
have a volume staged and in what state, and asking those nodes to warm paths into their cache.

Every call carries `authorization: Bearer <token>`, the token read anew for each call (the chart
gives the operator a projected ServiceAccount token bound to the NodeAdmin audience, which
kubelet rotates); node plugins have the API server review it. With TLS on, a channel trusts the
self-signed certificate its node plugin presents when the channel is made (a node plugin makes a
new one at every start): the traffic is encrypted, but the node is not authenticated. Every call
has a deadline. The token never appears in messages."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc
import grpc.aio

from razorfs.volume_spec import WarmupProgress
from razorfs_wire.razorfs.v1 import node_admin_pb2, node_admin_pb2_grpc

from .cluster import NodePluginPod
from .recent_listings import RecentListings
from .status_draft import warmup_progress

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


# The name in every node plugin's certificate (razorfs.csi.admin_tls.SERVER_NAME): node plugins
# are reached by pod IP.
NODE_ADMIN_SERVER_NAME = "razorfs-node-admin"
CERT_FETCH_TIMEOUT_S = 5.0


def fetch_server_certificate(address: str, timeout_s: float = CERT_FETCH_TIMEOUT_S) -> bytes:
    """The PEM certificate the NodeAdmin server at host:port presents (blocking)."""
    host, _, port = address.rpartition(":")
    return ssl.get_server_certificate((host.strip("[]"), int(port)), timeout=timeout_s).encode()


def tls_channel(address: str, certificate: bytes) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(root_certificates=certificate)
    options = (*_CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", NODE_ADMIN_SERVER_NAME))
    return grpc.aio.secure_channel(address, credentials, options=options)


class NodeAdminClient:
    def __init__(self, token: Callable[[], str], port: int, timeout_s: float, tls: bool = False) -> None:
        self._token = token
        self._port = port
        self._timeout_s = timeout_s
        self._tls = tls
        self._channels: dict[str, tuple[grpc.aio.Channel, float]] = {}
        self._listings: RecentListings[node_admin_pb2.ListVolumesResponse] = RecentListings()

    @property
    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._token()
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def _channel(self, address: str) -> grpc.aio.Channel:
        now = time.monotonic()
        for other, (channel, last_used) in list(self._channels.items()):
            if now - last_used > CHANNEL_IDLE_CLOSE_S:
                del self._channels[other]
                asyncio.get_running_loop().create_task(channel.close(None))  # unused: no grace
        if address in self._channels:
            channel = self._channels[address][0]
        elif self._tls:
            certificate = await asyncio.to_thread(fetch_server_certificate, address)
            channel = tls_channel(address, certificate)
        else:
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._channels[address] = (channel, now)
        return channel

    def _forget_channel(self, address: str) -> None:
        """After a failed call: a restarted node plugin has a new certificate, so the next call
        makes a new channel."""
        entry = self._channels.pop(address, None)
        if entry is not None:
            asyncio.get_running_loop().create_task(entry[0].close(None))

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
            try:
                stub = node_admin_pb2_grpc.NodeAdminStub(await self._channel(address))
                reply: node_admin_pb2.ListVolumesResponse = await stub.ListVolumes(
                    node_admin_pb2.ListVolumesRequest(), metadata=self._metadata, timeout=self._timeout_s
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self._forget_channel(address)
                raise
            except (OSError, ssl.SSLError) as exc:  # the certificate could not be fetched
                raise _unreachable(address, exc) from None
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

    async def update_credentials(self, address: str, volume_id: str, secrets: dict[str, str]) -> int:
        """Hands one node new keys for a volume (its Secret changed); returns the daemons that took
        them. Raises grpc.aio.AioRpcError."""
        try:
            channel = await self._channel(address)
        except (OSError, ssl.SSLError) as exc:
            raise _unreachable(address, exc) from None
        stub = node_admin_pb2_grpc.NodeAdminStub(channel)
        reply = await stub.UpdateCredentials(
            node_admin_pb2.UpdateCredentialsRequest(volume_id=volume_id, secrets=secrets),
            metadata=self._metadata,
            timeout=self._timeout_s,
        )
        return int(reply.daemons_updated)

    async def warm(
        self, address: str, volume_id: str, paths: Sequence[str], timeout_s: float
    ) -> AsyncIterator[WarmupProgress]:
        """Streams WarmVolume to completion, yielding its progress (state Warming) as the node
        reports it. Raises grpc.aio.AioRpcError."""
        try:
            channel = await self._channel(address)
        except (OSError, ssl.SSLError) as exc:
            raise _unreachable(address, exc) from None
        stub = node_admin_pb2_grpc.NodeAdminStub(channel)
        call = stub.WarmVolume(
            node_admin_pb2.WarmVolumeRequest(volume_id=volume_id, paths=list(paths)),
            metadata=self._metadata,
            timeout=timeout_s,
        )
        async for progress in call:
            yield warmup_progress(
                "Warming", progress.files_done, progress.files_total, progress.bytes_done, progress.bytes_total
            )


def _unreachable(address: str, exc: BaseException) -> grpc.aio.AioRpcError:
    """A failed certificate fetch, reported like any call that found the node unreachable."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details=f"no TLS handshake with NodeAdmin at {address}: {type(exc).__name__}: {exc}",
        debug_error_string="",
    )
