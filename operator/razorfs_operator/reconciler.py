"""Level-based reconciliation of one RazorVolume: from the object as the API server has it and the
state of the cluster and S3, converge the PV and PVC and write the status, and, behind the
finalizer, release them and (reclaimPolicy Delete) the objects. Every step re-reads what it acts
on, so running it again from any state (an interrupted earlier run included) converges and never
duplicates: the PV and PVC have names derived from the RazorVolume's uid and name. The volume's
state on each node (NodeAdmin reports, credential hand-over, warm-up) is node_states.py's."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import kopf
import pydantic

from razorfs.volume_spec import RazorVolumeSpec, SecretKey

from .cluster import claim_users
from .credentials import ca_bundle_from_secret_data, credentials_from_secret_data
from .endpoint_policy import EndpointPolicy
from .errors import (
    ClaimConflict,
    ClaimInUse,
    InvalidSpec,
    ObjectsStillTerminating,
    VolumeProblem,
)
from .node_states import NodeStates
from .outcome import report_problem
from .runtime import Runtime
from .s3_bucket import VolumeBucket
from .status_draft import POD_IDENTITY_MESSAGE, POD_IDENTITY_REASON, StatusDraft
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
MAX_PODS_NAMED = 5


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
        if spec.s3.uses_pod_identity:
            # Each pod signs with its own ServiceAccount's role; the operator has none of those
            # identities and will not check with an anonymous or borrowed one. Mounts report S3
            # trouble themselves (FailedMount events on the pods).
            draft.set_unknown("S3Reachable", POD_IDENTITY_REASON, POD_IDENTITY_MESSAGE)
            return
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
            draft.status.nodes = await NodeStates(self.rt).gather(draft, spec, body)
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
        if spec.s3.secret_ref is None:  # authentication pod (the CRD lets no other spec lack it)
            raise InvalidSpec("the operator has no credentials for a volume without s3.secretRef")
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


def _names(pods: Sequence[str]) -> str:
    shown = ", ".join(pods[:MAX_PODS_NAMED])
    return shown + (f" and {len(pods) - MAX_PODS_NAMED} more" if len(pods) > MAX_PODS_NAMED else "")
