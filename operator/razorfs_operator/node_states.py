"""The volume on each node, gathered at a resync from the node plugins' NodeAdmin: each node's
state (an Unreachable node keeps the figures it reported last), the Secret's current keys handed
to nodes whose daemons sign with older ones, and the spec's warmup paths prefetched on every node
that has the volume Mounted, its progress patched into the status while it runs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from typing import Any

import grpc.aio
import kopf

from razorfs.volume_spec import NodeVolumeState, RazorVolumeSpec, RazorVolumeStatus, SecretKey

from .errors import VolumeProblem
from .node_admin import NodeReport
from .runtime import Runtime
from .status_draft import StatusDraft, summarize_nodes, warmup_progress
from .volume_objects import VolumeIdentity

log = logging.getLogger("razorfs_operator")
# While a warm-up streams, its progress reaches the status at most this often.
WARMUP_PROGRESS_INTERVAL_S = 1.0


class NodeStates:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    async def gather(self, draft: StatusDraft, spec: RazorVolumeSpec, body: Any) -> list[NodeVolumeState]:
        identity = draft.identity
        pods = await self.rt.node_plugin_pods()
        reports = await self.rt.node_admin.volume_on_nodes(pods, identity.volume_handle)
        known = {node.name: node for node in draft.old.nodes}
        states: dict[str, NodeVolumeState] = {}
        for report in reports:
            before = known.get(report.node_name)
            if report.state == "Unreachable" and before is None:
                continue  # a node we never saw the volume on: nothing to report about it
            state = _node_state(report, before)
            states[report.node_name] = state
            if report.state == "Mounted":
                await self._hand_over_credentials(identity, spec, report)
                await self._warm(draft, spec, report, state, states, body)
        return sorted(states.values(), key=lambda s: s.name)

    async def _hand_over_credentials(self, identity: VolumeIdentity, spec: RazorVolumeSpec, report: NodeReport) -> None:
        """A node signing with other keys than the Secret holds now gets the new ones: a rotated
        Secret reaches running mounts without a remount. Best effort: retried next resync."""
        if spec.s3.secret_ref is None:
            return  # authentication pod: no keys to hand over (each daemon asks STS itself)
        secret_name = spec.s3.secret_ref.name
        try:
            data = await self.rt.blocking(self.rt.cluster.read_secret_data, identity.namespace, secret_name)
        except VolumeProblem:
            return  # the S3 check reports a missing Secret; the running daemons keep their keys
        keys = (SecretKey.ACCESS_KEY_ID, SecretKey.SECRET_ACCESS_KEY, SecretKey.SESSION_TOKEN, SecretKey.CA_BUNDLE)
        secrets = {key: base64.b64decode(value).decode() for key, value in data.items() if key in keys}
        digest = hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).hexdigest()
        where = (identity.volume_handle, report.node_name)
        if self.rt.credentials_on_nodes.get(where) == digest:
            return
        try:
            updated = await self.rt.node_admin.update_credentials(report.address, identity.volume_handle, secrets)
        except grpc.aio.AioRpcError as exc:
            log.warning("credentials of %s/%s not handed to node %s yet: %s %s", identity.namespace,
                        identity.name, report.node_name, exc.code().name, exc.details())
            return
        self.rt.credentials_on_nodes[where] = digest
        log.info("credentials of %s/%s handed to %d daemon(s) on node %s", identity.namespace, identity.name,
                 updated, report.node_name)

    async def _warm(
        self,
        draft: StatusDraft,
        spec: RazorVolumeSpec,
        report: NodeReport,
        state: NodeVolumeState,
        states: dict[str, NodeVolumeState],
        body: Any,
    ) -> None:
        """Prefetches the spec's warmup paths on one node unless it has them already; its progress
        goes into `state.warmup` and, every WARMUP_PROGRESS_INTERVAL_S, into the status."""
        wanted = spec.cache.warmup.paths if spec.cache.warmup else []
        if not wanted:
            state.warmup = None
            return
        if sorted(wanted) == sorted(state.warmed_paths):
            if state.warmup is None or state.warmup.state != "Warmed":
                # Warmed before progress was kept, or before a later change of paths failed.
                state.warmup = warmup_progress("Warmed")
            return
        state.warmup = warmup_progress("Warming")
        await self._write_progress(draft, states)
        published = time.monotonic()
        try:
            async for progress in self.rt.node_admin.warm(
                report.address, draft.identity.volume_handle, wanted, self.rt.config.warmup_timeout_s
            ):
                state.warmup = progress
                if time.monotonic() - published >= WARMUP_PROGRESS_INTERVAL_S:
                    await self._write_progress(draft, states)
                    published = time.monotonic()
        except grpc.aio.AioRpcError as exc:
            message = f"{exc.code().name}: {exc.details()}"
            last = state.warmup
            state.warmup = warmup_progress(
                "Failed", last.files_done, last.files_total, last.bytes_done, last.bytes_total, message
            )
            kopf.warn(body, reason="WarmupFailed", message=f"node {report.node_name}: {message}")
            return
        last = state.warmup
        state.warmup = warmup_progress("Warmed", last.files_done, last.files_total, last.bytes_done, last.bytes_total)
        state.warmed_paths = sorted(wanted)
        kopf.info(
            body,
            reason="WarmedUp",
            message=f"node {report.node_name} prefetched {last.files_done} file(s) of {', '.join(wanted)}",
        )

    async def _write_progress(self, draft: StatusDraft, states: dict[str, NodeVolumeState]) -> None:
        """Patches the node states known so far (the others as the status had them) and their
        totals, while a warm-up runs; the run's full status follows when it ends."""
        nodes = {**{node.name: node for node in draft.old.nodes}, **states}
        progress = RazorVolumeStatus(nodes=sorted(nodes.values(), key=lambda s: s.name))
        summarize_nodes(progress)
        fields = {"nodes", "mounted_nodes", "cached_bytes", "dirty_bytes", "warmup"}
        payload = progress.model_dump(by_alias=True, mode="json", exclude_none=True, include=fields)
        identity = draft.identity
        await self.rt.blocking(self.rt.cluster.patch_razorvolume_status, identity.namespace, identity.name, payload)


def _node_state(report: NodeReport, before: NodeVolumeState | None) -> NodeVolumeState:
    """A node's state from its report; an Unreachable node keeps the figures it reported last,
    so dirty bytes still on it are not hidden, and every node keeps what it has warmed."""
    figures = before if report.state == "Unreachable" and before is not None else report
    return NodeVolumeState(
        name=report.node_name,
        state=report.state,  # type: ignore[arg-type]  # validated by NodeAdminClient
        cached_bytes=figures.cached_bytes,
        dirty_bytes=figures.dirty_bytes,
        last_error=report.last_error,
        warmed_paths=before.warmed_paths if before else [],
        warmup=before.warmup if before else None,
    )
