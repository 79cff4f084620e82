"""The status of one RazorVolume as a handler run composes it: starts from what the object carries,
collects conditions and the problem that keeps the volume from Ready, and concludes into phase and
Ready the same way for every handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic

from razorfs.volume_spec import ConditionType, NodeVolumeState, RazorVolumeStatus, WarmupProgress, WarmupStateName

from .conditions import find_condition, is_true, now, phase_of, set_condition
from .errors import VolumeProblem
from .volume_objects import VolumeIdentity

# S3Reachable of an `authentication: pod` volume: Unknown, never checked by the operator, which has
# no identity of the volume's pods (docs/security.md); such a volume becomes Ready without it.
POD_IDENTITY_REASON = "NotCheckedPodIdentity"
POD_IDENTITY_MESSAGE = (
    "not checked by the operator: with authentication pod each pod signs with its own ServiceAccount's "
    "role, which the operator does not have; bucket access, usage and warmup are not checked or measured, "
    "and a pod whose role cannot reach the bucket fails to mount (FailedMount event)"
)


def parse_status(body: Any) -> RazorVolumeStatus:
    try:
        return RazorVolumeStatus.model_validate(dict(body.get("status") or {}))
    except pydantic.ValidationError:
        # A status we cannot read is rebuilt from scratch rather than blocking reconciliation.
        return RazorVolumeStatus()


@dataclass
class StatusDraft:
    identity: VolumeIdentity
    generation: int | None
    old: RazorVolumeStatus
    status: RazorVolumeStatus
    at: datetime = field(default_factory=now)
    problem: VolumeProblem | None = None

    @classmethod
    def from_body(cls, body: Any) -> StatusDraft:
        meta = body["metadata"]
        old = parse_status(body)
        identity = VolumeIdentity(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])
        return cls(identity, meta.get("generation"), old, old.model_copy(deep=True))

    def set(self, type_: ConditionType, ok: bool, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions, type_, "True" if ok else "False", reason, message, self.generation, self.at
        )

    def set_unknown(self, type_: ConditionType, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions, type_, "Unknown", reason, message, self.generation, self.at
        )

    def fail(self, problem: VolumeProblem, condition: ConditionType | None = None) -> None:
        """Records a problem (the first one wins for Ready) and, if given, the condition it falsifies."""
        if condition is not None:
            self.set(condition, False, problem.reason, problem.message)
        self.problem = self.problem or problem

    def is_true(self, type_: ConditionType) -> bool:
        return is_true(self.status.conditions, type_)

    def _s3_usable(self) -> bool:
        """S3 answered the operator's check, or the volume is one the operator cannot check (pod
        identity): its pods find out at mount time."""
        s3 = find_condition(self.status.conditions, "S3Reachable")
        return s3 is not None and (s3.status == "True" or s3.reason == POD_IDENTITY_REASON)

    def conclude(self, has_claim: bool, has_volume: bool) -> bool:
        """Sets Ready, phase and the object names; returns whether the volume is Ready."""
        ready = self.problem is None and self._s3_usable() and self.is_true("Bound")
        if ready:
            self.set("Ready", True, "VolumeReady", f"claim {self.identity.claim_name} is ready to be mounted")
        elif self.problem is not None:
            self.set("Ready", False, self.problem.reason, self.problem.message)
        else:
            bound = find_condition(self.status.conditions, "Bound")
            self.set("Ready", False, bound.reason if bound else "Reconciling", bound.message if bound else "")
        permanent = self.problem is not None and self.problem.permanent
        self.status.phase = phase_of(ready, permanent, deleting=False)
        self.status.observed_generation = self.generation
        self.status.persistent_volume_name = self.identity.pv_name if has_volume else None
        self.status.claim_name = self.identity.claim_name if has_claim else None
        self.status.volume_handle = self.identity.volume_handle
        summarize_nodes(self.status)
        return ready

    def terminating(self, problem: VolumeProblem, in_use: bool) -> None:
        if in_use:
            self.set("InUse", True, problem.reason, problem.message)
        self.set("Ready", False, problem.reason, problem.message)
        self.status.phase = "Terminating"
        self.problem = problem

    def problem_changed(self) -> bool:
        """Whether the problem differs from what Ready said before (so it deserves an event)."""
        before = find_condition(self.old.conditions, "Ready")
        if self.problem is None:
            return False
        return before is None or before.reason != self.problem.reason or before.message != self.problem.message

    def changed(self) -> bool:
        """Whether the composed status differs from the one the object carried."""
        return _wire(self.status) != _wire(self.old)

    def became_ready(self) -> bool:
        return self.is_true("Ready") and not is_true(self.old.conditions, "Ready")


def warmup_progress(
    state: WarmupStateName,
    files_done: int = 0,
    files_total: int = 0,
    bytes_done: int = 0,
    bytes_total: int = 0,
    message: str = "",
) -> WarmupProgress:
    """Progress with its percent: of the bytes when the node knows them, else of the files."""
    if state == "Warmed":
        percent = 100
    elif bytes_total > 0:
        percent = min(100, bytes_done * 100 // bytes_total)
    elif files_total > 0:
        percent = min(100, files_done * 100 // files_total)
    else:
        percent = 0
    return WarmupProgress(
        state=state,
        files_done=files_done,
        files_total=files_total,
        bytes_done=bytes_done,
        bytes_total=bytes_total,
        percent=percent,
        message=message,
    )


def summarize_nodes(status: RazorVolumeStatus) -> None:
    """Sets the volume-wide figures (`kubectl get rv -o wide`) from the per-node ones."""
    nodes = status.nodes
    status.mounted_nodes = sum(1 for node in nodes if node.state == "Mounted")
    status.cached_bytes = sum(node.cached_bytes for node in nodes)
    status.dirty_bytes = sum(node.dirty_bytes for node in nodes)
    status.warmup = _total_warmup(nodes)


def _total_warmup(nodes: list[NodeVolumeState]) -> WarmupProgress | None:
    warming = [node.warmup for node in nodes if node.warmup is not None]
    if not warming:
        return None
    states = {progress.state for progress in warming}
    state: WarmupStateName = "Failed" if "Failed" in states else "Warming" if "Warming" in states else "Warmed"
    failed = [f"node {node.name}: {node.warmup.message}" for node in nodes if node.warmup and node.warmup.message]
    return warmup_progress(
        state,
        files_done=sum(p.files_done for p in warming),
        files_total=sum(p.files_total for p in warming),
        bytes_done=sum(p.bytes_done for p in warming),
        bytes_total=sum(p.bytes_total for p in warming),
        message="; ".join(failed),
    )


def _wire(status: RazorVolumeStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json", exclude_none=True)
