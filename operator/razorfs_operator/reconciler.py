"""Level-based reconciliation of one RazorVolume: from the object as the API server has it and the
state of the cluster and S3, converge the PV and PVC and write the status. Every step re-reads what
it acts on, so running it again from any state (an interrupted earlier run included) converges and
never duplicates: the PV and PVC have names derived from the RazorVolume's uid and name."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import grpc.aio
import kopf
import pydantic

from razorfs.volume_spec import (
    Condition,
    NodeVolumeState,
    RazorVolumeSpec,
    RazorVolumeStatus,
)

from .cluster import Cluster
from .conditions import find_condition, is_true, now, phase_of, set_condition
from .config import OperatorConfig
from .credentials import ca_bundle_from_secret_data, credentials_from_secret_data
from .errors import (
    ClaimConflict,
    ClaimInUse,
    InvalidSpec,
    ObjectsStillTerminating,
    VolumeProblem,
)
from .node_admin import NodeAdminClient, NodeReport
from .outcome import report_problem
from .s3_bucket import VolumeBucket
from .volume_objects import (
    Manifest,
    VolumeIdentity,
    claim_reference,
    desired_claim,
    desired_volume,
    is_ours,
    judge_binding,
)

log = logging.getLogger("razorfs_operator")
T = TypeVar("T")
MAX_PODS_NAMED = 5


@dataclass
class Runtime:
    """What every handler needs; built once at operator startup and kept in kopf's memo."""

    config: OperatorConfig
    cluster: Cluster
    executor: ThreadPoolExecutor
    node_admin: NodeAdminClient

    async def blocking(self, call: Callable[..., T], *args: Any) -> T:
        """Runs a blocking call (boto3, the Kubernetes client) on the bounded worker pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)


def identity_of(body: Any) -> VolumeIdentity:
    meta = body["metadata"]
    return VolumeIdentity(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])


def parse_spec(body: Any) -> RazorVolumeSpec:
    try:
        return RazorVolumeSpec.model_validate(dict(body.get("spec") or {}))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidSpec(f"spec.{where}: {first['msg']}") from None


def parse_status(body: Any) -> RazorVolumeStatus:
    try:
        return RazorVolumeStatus.model_validate(dict(body.get("status") or {}))
    except pydantic.ValidationError:
        # A status we cannot read is rebuilt from scratch rather than blocking reconciliation.
        return RazorVolumeStatus()


class Reconciler:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime

    # --- create / update / resume / resync ---------------------------------------------------
    async def reconcile(self, body: Any, *, recheck_s3: bool, refresh: bool) -> VolumeProblem | None:
        """Converges one RazorVolume and patches its status. With `recheck_s3` the S3 write check
        runs even if it passed before; with `refresh` usage, node state and warmup are gathered too.
        Returns the problem that keeps it from Ready (already reported), or None."""
        identity = identity_of(body)
        generation = body["metadata"].get("generation")
        old = parse_status(body)
        conditions: list[Condition] = list(old.conditions)
        at = now()
        problem: VolumeProblem | None = None
        status = old.model_copy()

        def set_(type_: Any, ok: bool, reason: str, message: str) -> None:
            nonlocal conditions
            conditions = set_condition(conditions, type_, "True" if ok else "False", reason, message, generation, at)

        try:
            spec = parse_spec(body)
        except InvalidSpec as exc:
            problem = exc
            spec = None

        claim: Manifest | None = None
        volume: Manifest | None = None
        if spec is not None:
            if recheck_s3 or not is_true(conditions, "S3Reachable"):
                try:
                    bucket = await self._bucket(identity, spec)
                    await self.rt.blocking(bucket.check_writable)
                    prefix = spec.s3.prefix or "(whole bucket)"
                    set_(
                        "S3Reachable",
                        True,
                        "BucketWritable",
                        f"bucket {spec.s3.bucket} answers and prefix {prefix} is writable",
                    )
                except VolumeProblem as exc:
                    set_("S3Reachable", False, exc.reason, exc.message)
                    problem = exc
            claim = await self.rt.blocking(self.rt.cluster.get_claim, identity.namespace, identity.claim_name)
            volume = await self.rt.blocking(self.rt.cluster.get_volume, identity.pv_name)
            # The claim is only offered once S3 has worked: a claim whose mounts must fail helps
            # nobody. Once created it is kept through later S3 trouble.
            if problem is None or claim is not None or volume is not None:
                try:
                    claim, volume = await self._apply_objects(identity, spec, claim, volume)
                except VolumeProblem as exc:
                    problem = problem or exc
            binding = judge_binding(identity, claim, volume)
            set_("Bound", binding.bound, binding.reason, binding.message)

            users = await self.rt.blocking(self.rt.cluster.pods_using_claim, identity.namespace, identity.claim_name)
            if users:
                set_("InUse", True, "PodsUsingClaim", f"used by pod(s) {_names(users)}")
            else:
                set_("InUse", False, "NoPods", "no pod uses the claim")

            if refresh and claim is not None:
                status.nodes = await self._node_states(identity, spec, old.nodes, body)
                if is_true(conditions, "S3Reachable"):
                    try:
                        bucket = await self._bucket(identity, spec)
                        status.usage = await self.rt.blocking(bucket.measure_usage, self.rt.config.usage_max_objects)
                    except VolumeProblem as exc:
                        set_("S3Reachable", False, exc.reason, exc.message)
                        problem = problem or exc

        ready = problem is None and is_true(conditions, "S3Reachable") and is_true(conditions, "Bound")
        if ready:
            set_("Ready", True, "VolumeReady", f"claim {identity.claim_name} is ready to be mounted")
        elif problem is not None:
            set_("Ready", False, problem.reason, problem.message)
        else:
            bound = find_condition(conditions, "Bound")
            set_("Ready", False, bound.reason if bound else "Reconciling", bound.message if bound else "")
        status.conditions = conditions
        status.phase = phase_of(ready, problem is not None and problem.permanent, deleting=False)
        status.observed_generation = generation
        status.persistent_volume_name = identity.pv_name if volume is not None else None
        status.claim_name = identity.claim_name if claim is not None else None
        status.volume_handle = identity.volume_handle
        await self._write_status(identity, status)

        if problem is not None:
            before = find_condition(old.conditions, "Ready")
            report_problem(
                body,
                problem,
                changed=before is None or before.reason != problem.reason or before.message != problem.message,
            )
        elif not is_true(old.conditions, "Ready"):
            kopf.info(
                body,
                reason="Ready",
                message=f"PersistentVolume {identity.pv_name} and claim {identity.claim_name} are bound",
            )
        return problem

    async def _bucket(self, identity: VolumeIdentity, spec: RazorVolumeSpec) -> VolumeBucket:
        secret_name = spec.s3.secret_ref.name
        data = await self.rt.blocking(self.rt.cluster.read_secret_data, identity.namespace, secret_name)
        credentials = credentials_from_secret_data(f"{identity.namespace}/{secret_name}", data)
        ca_pem = None
        ref = spec.s3.ca_bundle_secret_ref
        if ref is not None:
            ca_data = await self.rt.blocking(self.rt.cluster.read_secret_data, identity.namespace, ref.name)
            ca_pem = ca_bundle_from_secret_data(f"{identity.namespace}/{ref.name}", ref.key, ca_data)
        return VolumeBucket(
            spec.s3, credentials, self.rt.config.s3_timeout_s, ca_pem, f"{identity.namespace}/{secret_name}"
        )

    async def _apply_objects(
        self, identity: VolumeIdentity, spec: RazorVolumeSpec, claim: Manifest | None, volume: Manifest | None
    ) -> tuple[Manifest, Manifest]:
        """Creates what is missing and repairs the references; the claim first, so the PV can be
        reserved for the claim's uid."""
        cluster = self.rt.cluster
        if claim is not None and not is_ours(identity, claim):
            raise ClaimConflict(
                f"PersistentVolumeClaim {identity.claim_name} exists and is not managed by this RazorVolume"
            )
        if volume is not None and not is_ours(identity, volume):
            raise ClaimConflict(f"PersistentVolume {identity.pv_name} exists and is not managed by this RazorVolume")
        if claim is None:
            claim = await self.rt.blocking(cluster.create_claim, desired_claim(identity, spec))
            log.info("created PersistentVolumeClaim %s/%s", identity.namespace, identity.claim_name)
        claim_uid = claim["metadata"]["uid"]
        if volume is None:
            volume = await self.rt.blocking(cluster.create_volume, desired_volume(identity, spec, claim_uid))
            log.info("created PersistentVolume %s for %s/%s", identity.pv_name, identity.namespace, identity.name)
        else:
            patch = _volume_drift(volume, spec, identity, claim_uid)
            if patch:
                volume = await self.rt.blocking(cluster.patch_volume, identity.pv_name, patch)
        return claim, volume

    async def _node_states(
        self, identity: VolumeIdentity, spec: RazorVolumeSpec, previous: Sequence[NodeVolumeState], body: Any
    ) -> list[NodeVolumeState]:
        config = self.rt.config
        pods = await self.rt.blocking(self.rt.cluster.node_plugin_pods, config.node_namespace, config.node_selector)
        reports = await self.rt.node_admin.volume_on_nodes(pods, identity.volume_handle)
        known = {node.name: node for node in previous}
        states = []
        for report in reports:
            if report.state == "Unreachable" and report.node_name not in known:
                continue  # a node we never saw the volume on: nothing to report about it
            warmed = known[report.node_name].warmed_paths if report.node_name in known else []
            if report.state == "Mounted":
                warmed = await self._warm(identity, spec, report, warmed, body)
            states.append(
                NodeVolumeState(
                    name=report.node_name,
                    state=report.state,  # type: ignore[arg-type]  # validated by NodeAdminClient
                    cached_bytes=report.cached_bytes,
                    dirty_bytes=report.dirty_bytes,
                    last_error=report.last_error,
                    warmed_paths=warmed,
                )
            )
        return sorted(states, key=lambda s: s.name)

    async def _warm(
        self,
        identity: VolumeIdentity,
        spec: RazorVolumeSpec,
        report: NodeReport,
        warmed: list[str],
        body: Any,
    ) -> list[str]:
        wanted = spec.cache.warmup.paths if spec.cache.warmup else []
        if not wanted or sorted(wanted) == sorted(warmed):
            return warmed
        try:
            files = await self.rt.node_admin.warm(
                report.address, identity.volume_handle, wanted, self.rt.config.warmup_timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            kopf.warn(
                body,
                reason="WarmupFailed",
                message=f"node {report.node_name}: {exc.code().name}: {exc.details()}",
            )
            return warmed
        kopf.info(
            body,
            reason="WarmedUp",
            message=f"node {report.node_name} prefetched {files} file(s) of {', '.join(wanted)}",
        )
        return sorted(wanted)

    async def _write_status(self, identity: VolumeIdentity, status: RazorVolumeStatus) -> None:
        payload = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        for key in ("persistentVolumeName", "claimName", "usage"):
            payload.setdefault(key, None)  # merge patch: None removes a stale value
        await self.rt.blocking(self.rt.cluster.patch_razorvolume_status, identity.namespace, identity.name, payload)

    # --- delete ----------------------------------------------------------------------------
    async def release(self, body: Any) -> None:
        """Deletion behind the finalizer: wait while pods use the claim, delete PVC and PV and wait
        until they are gone, then for reclaimPolicy Delete remove the objects under the prefix.
        Raises a VolumeProblem (already reported) while it has to wait."""
        identity = identity_of(body)
        generation = body["metadata"].get("generation")
        old = parse_status(body)
        status = old.model_copy()
        at = now()
        conditions = list(old.conditions)
        try:
            await self._release_steps(identity, body)
        except VolumeProblem as problem:
            if isinstance(problem, ClaimInUse):
                conditions = set_condition(conditions, "InUse", "True", problem.reason, problem.message, generation, at)
            conditions = set_condition(conditions, "Ready", "False", problem.reason, problem.message, generation, at)
            status.conditions, status.phase = conditions, "Terminating"
            await self._write_status(identity, status)
            before = find_condition(old.conditions, "Ready")
            report_problem(body, problem, changed=before is None or before.message != problem.message)
            raise
        kopf.info(
            body,
            reason="Released",
            message=f"claim {identity.claim_name} and PersistentVolume {identity.pv_name} removed",
        )

    async def _release_steps(self, identity: VolumeIdentity, body: Any) -> None:
        cluster = self.rt.cluster
        users = await self.rt.blocking(cluster.pods_using_claim, identity.namespace, identity.claim_name)
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
        if spec.reclaim_policy == "Delete":
            bucket = await self._bucket(identity, spec)
            deleted = await self.rt.blocking(bucket.delete_everything)
            kopf.info(
                body,
                reason="ObjectsDeleted",
                message=f"deleted {deleted} object(s) under {spec.s3.key_prefix}",
            )


def _volume_drift(volume: Manifest, spec: RazorVolumeSpec, identity: VolumeIdentity, claim_uid: str) -> Manifest:
    """The patch that brings the mutable parts of an existing PV back to the desired state."""
    patch: Manifest = {}
    current = volume.get("spec") or {}
    if (current.get("capacity") or {}).get("storage") != spec.capacity:
        patch.setdefault("spec", {})["capacity"] = {"storage": spec.capacity}
    ref = current.get("claimRef") or {}
    wanted = claim_reference(identity, claim_uid)
    if any(ref.get(key) != wanted[key] for key in ("namespace", "name", "uid")):
        patch.setdefault("spec", {})["claimRef"] = wanted
    return patch


def _names(pods: Sequence[str]) -> str:
    shown = ", ".join(pods[:MAX_PODS_NAMED])
    return shown + (f" and {len(pods) - MAX_PODS_NAMED} more" if len(pods) > MAX_PODS_NAMED else "")


def age_s(moment: datetime | None) -> float:
    return float("inf") if moment is None else (now() - moment).total_seconds()
