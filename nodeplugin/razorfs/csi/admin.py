"""The razorfs.v1.NodeAdmin server the operator calls: per-volume cache figures, flush, warm, and
new credentials when a volume's Secret changes.

Every call must carry `authorization: Bearer <token>`, judged by the plugin's `AdminAuth` (see
admin_auth.py: a TokenReview accepting only the operator's ServiceAccount, or a shared token in
development); anything else is UNAUTHENTICATED or PERMISSION_DENIED. Every call has a deadline.
The token is never logged."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from razorfs.csi.admin_auth import AdminAuth, bearer_token
from razorfs.csi.errors import CsiError, DeadlineExceeded, InvalidArgument, translate_errors
from razorfs.csi.mount_settings import Credentials
from razorfs.csi.staged_volume import StagedVolume, VolumeState
from razorfs.csi.supervisor import Supervisor
from razorfs.mount.control import warm_path_problem
from razorfs_wire.razorfs.v1 import node_admin_pb2, node_admin_pb2_grpc

log = logging.getLogger(__name__)

STATS_TIMEOUT_S = 2.0
# Every call ends: a flush or warm asked without a deadline (or a longer one) gets these.
FLUSH_MAX_S = 600.0
WARM_MAX_S = 1800.0


def call_budget_s(context: grpc.aio.ServicerContext[Any, Any], asked_s: float | None, ceiling_s: float) -> float:
    """Seconds a call may run: what the caller asked, its gRPC deadline and our ceiling, the
    smallest of them."""
    budget = min(asked_s or ceiling_s, ceiling_s)
    remaining = context.time_remaining()
    if remaining is not None:
        budget = min(budget, remaining)
    return max(budget, 0.001)


class NodeAdminService(node_admin_pb2_grpc.NodeAdminServicer):  # type: ignore[misc]
    def __init__(self, supervisor: Supervisor, node_id: str, auth: AdminAuth):
        self.supervisor = supervisor
        self.node_id = node_id
        self._auth = auth

    async def _authorize(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await self._auth.check(bearer_token(context.invocation_metadata()))

    async def _volume_state(self, volume: StagedVolume) -> node_admin_pb2.VolumeState:
        record = volume.record
        state = node_admin_pb2.VolumeState(
            volume_id=record.volume_id,
            staging_path=record.staging_path,
            state=volume.state.value,
            last_error=volume.last_error,
            published_paths=sorted(record.targets),
            daemon_pid=record.daemon.pid if record.daemon else 0,
        )
        # A stage without a daemon (authentication pod) has no figures: its ServiceAccounts' mounts do.
        if volume.state is VolumeState.MOUNTED and not record.per_service_account:
            try:
                stats = await self.supervisor.stats(record.volume_id, STATS_TIMEOUT_S)
            except CsiError as exc:
                state.last_error = str(exc)
                return state
            hits, misses = int(stats.get("hits", 0)), int(stats.get("misses", 0))
            state.cached_bytes = int(stats.get("cached_bytes", 0))
            state.dirty_bytes = int(stats.get("dirty_bytes", 0))
            state.uploading_bytes = int(stats.get("uploading_bytes", 0))
            state.cache_limit_bytes = int(stats.get("cache_limit_bytes", 0))
            state.hit_ratio = hits / (hits + misses) if hits + misses else 0.0
            state.last_error = state.last_error or str(stats.get("last_error") or "")
        return state

    @translate_errors
    async def ListVolumes(
        self, request: node_admin_pb2.ListVolumesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> node_admin_pb2.ListVolumesResponse:
        await self._authorize(context)
        volumes = self.supervisor.staged()
        states = await asyncio.gather(*(self._volume_state(v) for v in volumes))
        return node_admin_pb2.ListVolumesResponse(node_id=self.node_id, volumes=states)

    @translate_errors
    async def FlushVolume(
        self, request: node_admin_pb2.FlushVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> node_admin_pb2.FlushVolumeResponse:
        await self._authorize(context)
        budget_s = call_budget_s(context, request.timeout_seconds or None, FLUSH_MAX_S)
        flushed = await self.supervisor.flush(request.volume_id, budget_s)
        return node_admin_pb2.FlushVolumeResponse(flushed_bytes=flushed)

    @translate_errors
    async def UpdateCredentials(
        self, request: node_admin_pb2.UpdateCredentialsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> node_admin_pb2.UpdateCredentialsResponse:
        await self._authorize(context)
        if not request.volume_id:
            raise InvalidArgument("volume_id is required")
        updated = await self.supervisor.update_credentials(request.volume_id, Credentials.from_secrets(request.secrets))
        return node_admin_pb2.UpdateCredentialsResponse(daemons_updated=updated)

    @translate_errors
    async def WarmVolume(
        self, request: node_admin_pb2.WarmVolumeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await self._authorize(context)
        paths = list(request.paths) or [""]
        for path in paths:
            problem = warm_path_problem(path)
            if problem is not None:
                raise InvalidArgument(problem)
        try:
            async with asyncio.timeout(call_budget_s(context, None, WARM_MAX_S)):
                await self._stream_warm(request.volume_id, paths, context)
        except TimeoutError:
            raise DeadlineExceeded(f"warming volume {request.volume_id} did not finish in time") from None

    async def _stream_warm(self, volume_id: str, paths: list[str], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        async for progress in self.supervisor.warm(volume_id, paths):
            await context.write(
                node_admin_pb2.WarmVolumeProgress(
                    files_done=int(progress.get("files_done", 0)),
                    files_total=int(progress.get("files_total", 0)),
                    bytes_done=int(progress.get("bytes_done", 0)),
                    bytes_total=int(progress.get("bytes_total", 0)),
                    current_path=str(progress.get("current_path", "")),
                )
            )
