"""Level-based reconciliation of one RazorVolume: from the object as the API server has it and the
state of the cluster and S3, converge the PV and PVC and write the status. Every step re-reads what
it acts on, so running it again from any state (an interrupted earlier run included) converges and
never duplicates: the PV and PVC have names derived from the RazorVolume's uid and name."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc.aio
import kopf
import pydantic

from razorfs.volume_spec import NodeVolumeState, RazorVolumeSpec, RazorVolumeStatus, SecretKey

from .cluster import Cluster, NodePluginPod, claim_users
from .config import OperatorConfig
from .credentials import ca_bundle_from_secret_data, credentials_from_secret_data
from .endpoint_policy import EndpointPolicy
from .errors import (
    ClaimConflict,
    ClaimInUse,
    InvalidSpec,
    ObjectsStillTerminating,
    VolumeProblem,
)
from .node_admin import NodeAdminClient, NodeReport
from .outcome import report_problem
from .recent_listings import RecentListings
from .s3_bucket import VolumeBucket
from .status_draft import StatusDraft, summarize_nodes, warmup_progress
from .volume_objects import (
    Manifest,
    VolumeIdentity,
    claim_capacity_patch,
    claim_reference,
    desired_claim,
    desired_volume,
    is_ours,
    judge_binding,
    volume_capacity_patch,
)

log = logging.getLogger("razorfs_operator")
# kopf's finalizer marker (set in handlers.configure); named in messages about stuck deletions.
FINALIZER = "razorfs.io/cleanup"
T = TypeVar("T")
MAX_PODS_NAMED = 5
# While a warm-up streams, its progress reaches the status at most this often.
WARMUP_PROGRESS_INTERVAL_S = 1.0


@dataclass
class Runtime:
    """What every handler needs; built once at operator startup and kept in kopf's memo."""

    config: OperatorConfig
    cluster: Cluster
    executor: ThreadPoolExecutor
    node_admin: NodeAdminClient
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Resync runs hold at most half the worker threads, so a burst of new or changed volumes is
    # never queued behind the periodic refresh of the volumes that are fine already.
    resync_slots: asyncio.Semaphore = field(init=False)
    recent_node_pods: RecentListings[list[NodePluginPod]] = field(default_factory=RecentListings)
    recent_namespace_pods: RecentListings[list[Manifest]] = field(default_factory=RecentListings)
    # (volume handle, node) -> digest of the Secret data that node's daemons sign with, as far as
    # this operator process knows (a restarted operator hands every node the keys once more).
    credentials_on_nodes: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resync_slots = asyncio.Semaphore(max(1, self.config.worker_threads // 2))

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        """Runs a blocking call (boto3, the Kubernetes client) on the bounded worker pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def node_plugin_pods(self) -> list[NodePluginPod]:
        """The node plugin pods; the same answer for every volume's resync of one round."""
        config = self.config
        return await self.recent_node_pods.get(
            None, lambda: self.blocking(self.cluster.node_plugin_pods, config.node_namespace, config.node_selector)
        )

    async def recent_pods(self, namespace: str) -> list[Manifest]:
        """The pods of a namespace, shared by the resyncs of its volumes for a moment."""
        return await self.recent_namespace_pods.get(namespace, lambda: self.blocking(self.cluster.list_pods, namespace))

    def volume_lock(self, uid: str) -> asyncio.Lock:
        """Mutual exclusion of the runs for one volume (no state is kept in it)."""
        return self._locks.setdefault(uid, asyncio.Lock())

    def forget_volume(self, uid: str) -> None:
        self._locks.pop(uid, None)


def parse_spec(body: Any) -> RazorVolumeSpec:
    try:
        return RazorVolumeSpec.model_validate(dict(body.get("spec") or {}))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidSpec(f"spec.{where}: {first['msg']}") from None


class Reconciler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # --- create / update / resume / resync ---------------------------------------------------
    async def reconcile(self, body: Any, *, recheck_s3: bool, refresh: bool) -> VolumeProblem | None:
        """Converges one RazorVolume and patches its status. With `recheck_s3` the S3 write check
        runs even if it passed before; with `refresh` usage, node state and warmup are gathered too.
        Returns the problem that keeps it from Ready (already reported), or None."""
        meta = body["metadata"]
        # kopf runs a volume's change handlers and its timer concurrently. One run at a time per
        # volume, each starting from the object as it is now (not the copy the handler was given),
        # so a run never reports a transition the previous one already reported.
        async with self.rt.volume_lock(meta["uid"]):
            fresh = await self.rt.blocking(self.rt.cluster.get_razorvolume, meta["namespace"], meta["name"])
            if fresh is None or fresh["metadata"]["uid"] != meta["uid"] or fresh["metadata"].get("deletionTimestamp"):
                return None  # deleted meanwhile: the delete handler owns it now
            return await self._reconcile(fresh, recheck_s3=recheck_s3, refresh=refresh)

    async def _reconcile(self, body: Any, *, recheck_s3: bool, refresh: bool) -> VolumeProblem | None:
        draft = StatusDraft.from_body(body)
        claim: Manifest | None = None
        volume: Manifest | None = None
        try:
            spec: RazorVolumeSpec | None = parse_spec(body)
        except InvalidSpec as exc:
            draft.fail(exc)
            spec = None
        if spec is not None:
            try:
                if recheck_s3 or not draft.is_true("S3Reachable"):
                    await self._check_s3(draft, spec)
                claim, volume = await self._converge_objects(draft, spec)
                await self._observe_use(draft, recent=refresh)
                if refresh and claim is not None:
                    await self._refresh(draft, spec, body)
            except VolumeProblem as exc:  # e.g. the API server failing a read: report and retry
                draft.fail(exc)
        identity = draft.identity
        # A foreign PVC or PV of the same name (ClaimConflict) is not ours to name in the status.
        draft.conclude(
            has_claim=claim is not None and is_ours(identity, claim),
            has_volume=volume is not None and is_ours(identity, volume),
        )
        await self._write_status(draft)
        if draft.problem is not None:
            report_problem(body, draft.problem, changed=draft.problem_changed())
        elif draft.became_ready():
            kopf.info(
                body,
                reason="Ready",
                message=f"PersistentVolume {draft.identity.pv_name} and claim {draft.identity.claim_name} are bound",
            )
        return draft.problem

    async def _check_s3(self, draft: StatusDraft, spec: RazorVolumeSpec) -> None:
        try:
            bucket = await self._bucket(draft.identity, spec)
            await self.rt.blocking(bucket.check_writable)
        except VolumeProblem as exc:
            draft.fail(exc, "S3Reachable")
            return
        prefix = spec.s3.prefix or "(whole bucket)"
        draft.set(
            "S3Reachable", True, "BucketWritable", f"bucket {spec.s3.bucket} answers and prefix {prefix} is writable"
        )

    async def _converge_objects(
        self, draft: StatusDraft, spec: RazorVolumeSpec
    ) -> tuple[Manifest | None, Manifest | None]:
        identity, cluster = draft.identity, self.rt.cluster
        claim: Manifest | None = None
        volume: Manifest | None = None
        # A volume whose status names neither object has never had them (or an earlier run was cut
        # short before it reported them): create straight away, an existing object comes back
        # from the conflict answer. Saves two reads per new volume; later runs read first.
        create_first = draft.problem is None and not draft.old.claim_name and not draft.old.persistent_volume_name
        if not create_first:
            claim = await self.rt.blocking(cluster.get_claim, identity.namespace, identity.claim_name)
            volume = await self.rt.blocking(cluster.get_volume, identity.pv_name)
        # The claim is only offered once S3 has worked: a claim whose mounts must fail helps
        # nobody. Once created it is kept through later S3 trouble.
        if draft.problem is None or claim is not None or volume is not None:
            try:
                claim, volume = await self._apply_objects(identity, spec, claim, volume)
            except VolumeProblem as exc:
                draft.fail(exc)
                if create_first:  # e.g. a foreign claim of that name: judge what is there
                    claim = await self.rt.blocking(cluster.get_claim, identity.namespace, identity.claim_name)
                    volume = await self.rt.blocking(cluster.get_volume, identity.pv_name)
        binding = judge_binding(identity, claim, volume)
        draft.set("Bound", binding.bound, binding.reason, binding.message)
        return claim, volume

    async def _observe_use(self, draft: StatusDraft, *, recent: bool) -> None:
        """InUse from the pods of the namespace; a periodic refresh may use a listing a moment old."""
        identity = draft.identity
        if recent:
            pods = await self.rt.recent_pods(identity.namespace)
        else:
            pods = await self.rt.blocking(self.rt.cluster.list_pods, identity.namespace)
        users = claim_users(pods, identity.claim_name)
        if users:
            draft.set("InUse", True, "PodsUsingClaim", f"used by pod(s) {_names(users)}")
        else:
            draft.set("InUse", False, "NoPods", "no pod uses the claim")

    async def _refresh(self, draft: StatusDraft, spec: RazorVolumeSpec, body: Any) -> None:
        try:
            draft.status.nodes = await self._node_states(draft, spec, body)
        except VolumeProblem as exc:
            # Node discovery failing must not hide the volume's own state; keep the last report.
            log.warning("RazorVolume %s: node state not refreshed: %s", draft.identity.name, exc.message)
        if not draft.is_true("S3Reachable"):
            return
        last = draft.old.usage.scanned_at if draft.old.usage else None
        if last is not None and (draft.at - last).total_seconds() < self.rt.config.usage_interval_s:
            return  # the listing is the expensive part: at most one per usage interval (status says when)
        try:
            bucket = await self._bucket(draft.identity, spec)
            draft.status.usage = await self.rt.blocking(bucket.measure_usage, self.rt.config.usage_max_objects)
        except VolumeProblem as exc:
            draft.fail(exc, "S3Reachable")

    async def _bucket(self, identity: VolumeIdentity, spec: RazorVolumeSpec) -> VolumeBucket:
        # Before the Secret is read or anything is sent: the endpoint must be one we may call.
        EndpointPolicy.parse(self.rt.config.allowed_endpoints).check(spec.s3.endpoint)
        secret_name = spec.s3.secret_ref.name
        data = await self.rt.blocking(self.rt.cluster.read_secret_data, identity.namespace, secret_name)
        credentials = credentials_from_secret_data(f"{identity.namespace}/{secret_name}", data)
        ca_pem = None
        ref = spec.s3.ca_bundle_secret_ref
        if ref is None and data.get(SecretKey.CA_BUNDLE):
            # The node plugin reads the CA bundle from the credentials Secret (its stage secret);
            # check S3 the way the mounts will reach it.
            ca_pem = ca_bundle_from_secret_data(f"{identity.namespace}/{secret_name}", SecretKey.CA_BUNDLE, data)
        elif ref is not None:
            ca_data = await self.rt.blocking(self.rt.cluster.read_secret_data, identity.namespace, ref.name)
            ca_pem = ca_bundle_from_secret_data(f"{identity.namespace}/{ref.name}", ref.key, ca_data)
        config = self.rt.config
        where = f"{identity.namespace}/{secret_name}"
        return VolumeBucket(spec.s3, credentials, config.s3_timeout_s, ca_pem, where, config.worker_threads)

    async def _apply_objects(
        self, identity: VolumeIdentity, spec: RazorVolumeSpec, seen_claim: Manifest | None, seen_volume: Manifest | None
    ) -> tuple[Manifest, Manifest]:
        """Creates what is missing (None: not seen) and repairs the references; the claim first,
        so the PV can be reserved for the claim's uid."""
        cluster = self.rt.cluster
        if seen_volume is not None and not is_ours(identity, seen_volume):
            raise ClaimConflict(f"PersistentVolume {identity.pv_name} exists and is not managed by this RazorVolume")
        if seen_claim is not None:
            claim = seen_claim
        else:
            claim, created = await self.rt.blocking(cluster.create_claim, desired_claim(identity, spec))
            if created:
                log.info("created PersistentVolumeClaim %s/%s", identity.namespace, identity.claim_name)
        if not is_ours(identity, claim):
            raise ClaimConflict(
                f"PersistentVolumeClaim {identity.claim_name} exists and is not managed by this RazorVolume"
            )
        claim_uid = claim["metadata"]["uid"]
        if seen_volume is not None:
            volume = seen_volume
        else:
            volume, created = await self.rt.blocking(cluster.create_volume, desired_volume(identity, spec, claim_uid))
            if created:
                log.info("created PersistentVolume %s for %s/%s", identity.pv_name, identity.namespace, identity.name)
            if not is_ours(identity, volume):
                raise ClaimConflict(
                    f"PersistentVolume {identity.pv_name} exists and is not managed by this RazorVolume"
                )
        patch = _volume_drift(volume, spec, identity, claim_uid)
        if patch:
            volume = await self.rt.blocking(cluster.patch_volume, identity.pv_name, patch)
        status_patch = claim_capacity_patch(claim, spec)
        if status_patch:
            claim = await self.rt.blocking(
                cluster.patch_claim_status, identity.namespace, identity.claim_name, status_patch
            )
            log.info("claim %s/%s now reports %s", identity.namespace, identity.claim_name, spec.capacity)
        return claim, volume

    async def _node_states(self, draft: StatusDraft, spec: RazorVolumeSpec, body: Any) -> list[NodeVolumeState]:
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

    async def _write_status(self, draft: StatusDraft) -> None:
        if not draft.changed():
            # Most resync runs find nothing new; a no-op patch would still cost the API server a
            # request and every watcher an event.
            return
        payload = draft.status.model_dump(by_alias=True, mode="json", exclude_none=True)
        for key in ("persistentVolumeName", "claimName", "usage", "warmup"):
            payload.setdefault(key, None)  # merge patch: None removes a stale value
        identity = draft.identity
        await self.rt.blocking(self.rt.cluster.patch_razorvolume_status, identity.namespace, identity.name, payload)

    # --- delete ----------------------------------------------------------------------------
    async def release(self, body: Any) -> None:
        """Deletion behind the finalizer: wait while pods use the claim, delete PVC and PV and wait
        until they are gone, then for reclaimPolicy Delete remove the objects under the prefix.
        Raises a VolumeProblem (already reported) while it has to wait."""
        async with self.rt.volume_lock(body["metadata"]["uid"]):
            await self._release(body)
        self.rt.forget_volume(body["metadata"]["uid"])

    async def _release(self, body: Any) -> None:
        draft = StatusDraft.from_body(body)
        identity = draft.identity
        try:
            await self._release_steps(identity, body)
        except VolumeProblem as problem:
            draft.terminating(problem, in_use=isinstance(problem, ClaimInUse))
            await self._write_status(draft)
            report_problem(body, problem, changed=draft.problem_changed())
            raise
        kopf.info(
            body,
            reason="Released",
            message=f"claim {identity.claim_name} and PersistentVolume {identity.pv_name} removed",
        )

    async def _release_steps(self, identity: VolumeIdentity, body: Any) -> None:
        cluster = self.rt.cluster
        users = claim_users(await self.rt.blocking(cluster.list_pods, identity.namespace), identity.claim_name)
        if users:
            raise ClaimInUse(f"deletion waits: claim {identity.claim_name} is used by pod(s) {_names(users)}")
        claim = await self.rt.blocking(cluster.get_claim, identity.namespace, identity.claim_name)
        if claim is not None and is_ours(identity, claim):
            await self.rt.blocking(cluster.delete_claim, identity.namespace, identity.claim_name)
        volume = await self.rt.blocking(cluster.get_volume, identity.pv_name)
        if volume is not None and is_ours(identity, volume):
            await self.rt.blocking(cluster.delete_volume, identity.pv_name)
        # Objects go only once Kubernetes has let go of the claim (the pvc-protection controller
        # removes its finalizer only when no pod can still mount it).
        waiting = []
        claim = await self.rt.blocking(cluster.get_claim, identity.namespace, identity.claim_name)
        if claim is not None and is_ours(identity, claim):
            waiting.append(f"PersistentVolumeClaim {identity.claim_name}")
        volume = await self.rt.blocking(cluster.get_volume, identity.pv_name)
        if volume is not None and is_ours(identity, volume):
            waiting.append(f"PersistentVolume {identity.pv_name}")
        if waiting:
            raise ObjectsStillTerminating(f"deletion waits for {' and '.join(waiting)} to be removed")
        spec = parse_spec(body)
        if spec.reclaim_policy != "Delete":
            return
        try:
            bucket = await self._bucket(identity, spec)
            deleted = await self.rt.blocking(bucket.delete_everything)  # 0 when the bucket is gone
        except VolumeProblem as problem:
            if problem.permanent:
                # The user must act; say how to give up on the objects instead.
                problem.message += f"; fix it, or remove the finalizer {FINALIZER} to keep the objects"
            raise
        kopf.info(body, reason="ObjectsDeleted", message=f"deleted {deleted} object(s) under {spec.s3.key_prefix}")


def _volume_drift(volume: Manifest, spec: RazorVolumeSpec, identity: VolumeIdentity, claim_uid: str) -> Manifest:
    """The patch that brings the mutable parts of an existing PV back to the desired state."""
    patch: Manifest = volume_capacity_patch(volume, spec)
    current = volume.get("spec") or {}
    ref = current.get("claimRef") or {}
    wanted = claim_reference(identity, claim_uid)
    if any(ref.get(key) != wanted[key] for key in ("namespace", "name", "uid")):
        patch.setdefault("spec", {})["claimRef"] = wanted
    return patch


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


def _names(pods: Sequence[str]) -> str:
    shown = ", ".join(pods[:MAX_PODS_NAMED])
    return shown + (f" and {len(pods) - MAX_PODS_NAMED} more" if len(pods) > MAX_PODS_NAMED else "")
