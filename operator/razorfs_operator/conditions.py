"""Kubernetes-style conditions of a RazorVolume and the phase they add up to (pure functions).
A condition's lastTransitionTime only moves when its status changes, so re-running a handler from
the same state writes the same status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from razorfs.volume_spec import Condition, ConditionStatus, ConditionType, Phase

CONDITION_ORDER: tuple[ConditionType, ...] = ("Ready", "S3Reachable", "Bound", "InUse")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def set_condition(
    conditions: Sequence[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    at: datetime,
) -> list[Condition]:
    """The conditions with `type_` replaced, in a stable order."""
    previous = find_condition(conditions, type_)
    transition = at if previous is None or previous.status != status else previous.last_transition_time
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    by_type = {c.type: c for c in conditions}
    by_type[type_] = updated
    return [by_type[t] for t in CONDITION_ORDER if t in by_type]


def find_condition(conditions: Sequence[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: ConditionType) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status == "True"


def phase_of(ready: bool, permanent_failure: bool, deleting: bool) -> Phase:
    if deleting:
        return "Terminating"
    if ready:
        return "Ready"
    return "Failed" if permanent_failure else "Pending"
