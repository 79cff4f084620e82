"""How one handler run turns its findings into Ready, phase and events-worthy changes."""

from __future__ import annotations

from typing import Any

from razorfs_operator.errors import CredentialsRejected, S3Unreachable
from razorfs_operator.status_draft import StatusDraft


def body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "vol", "uid": "u-1", "generation": 3},
        "status": status or {},
    }


def bound_and_reachable(draft: StatusDraft) -> None:
    draft.set("S3Reachable", True, "BucketWritable", "ok")
    draft.set("Bound", True, "Bound", "pair")


def test_reachable_and_bound_without_problem_is_ready_with_names_and_generation() -> None:
    draft = StatusDraft.from_body(body())
    bound_and_reachable(draft)
    assert draft.conclude(has_claim=True, has_volume=True)
    status = draft.status
    assert status.phase == "Ready" and status.observed_generation == 3
    assert (status.claim_name, status.persistent_volume_name, status.volume_handle) == (
        "vol",
        "razorfs-u-1",
        "razorfs-u-1",
    )
    assert draft.became_ready()


def test_permanent_problem_fails_and_transient_one_stays_pending() -> None:
    failed = StatusDraft.from_body(body())
    failed.fail(CredentialsRejected("rejected"), "S3Reachable")
    assert not failed.conclude(has_claim=False, has_volume=False)
    assert failed.status.phase == "Failed" and failed.status.claim_name is None
    ready = next(c for c in failed.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason, ready.message) == ("False", "CredentialsRejected", "rejected")

    pending = StatusDraft.from_body(body())
    pending.fail(S3Unreachable("timeout"), "S3Reachable")
    pending.conclude(has_claim=False, has_volume=False)
    assert pending.status.phase == "Pending"


def test_first_problem_wins_and_only_a_changed_problem_is_news() -> None:
    draft = StatusDraft.from_body(body())
    draft.fail(CredentialsRejected("rejected"))
    draft.fail(S3Unreachable("later"))
    draft.conclude(has_claim=False, has_volume=False)
    assert draft.problem is not None and draft.problem.reason == "CredentialsRejected"
    assert draft.problem_changed()

    again = StatusDraft.from_body(body(draft.status.model_dump(by_alias=True, mode="json", exclude_none=True)))
    again.fail(CredentialsRejected("rejected"))
    again.conclude(has_claim=False, has_volume=False)
    assert not again.problem_changed()


def test_an_already_ready_volume_does_not_become_ready_again() -> None:
    first = StatusDraft.from_body(body())
    bound_and_reachable(first)
    first.conclude(has_claim=True, has_volume=True)
    second = StatusDraft.from_body(body(first.status.model_dump(by_alias=True, mode="json", exclude_none=True)))
    bound_and_reachable(second)
    second.conclude(has_claim=True, has_volume=True)
    assert not second.became_ready()


def test_unreadable_status_is_rebuilt_instead_of_blocking() -> None:
    draft = StatusDraft.from_body(body({"phase": "Nonsense", "conditions": "not-a-list"}))
    assert draft.old.phase is None and draft.old.conditions == []


def test_a_rerun_from_the_same_state_changes_nothing_so_no_status_patch_is_needed() -> None:
    first = StatusDraft.from_body(body())
    bound_and_reachable(first)
    first.conclude(has_claim=True, has_volume=True)
    assert first.changed()
    written = first.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    again = StatusDraft.from_body(body(written))
    bound_and_reachable(again)
    again.conclude(has_claim=True, has_volume=True)
    assert not again.changed()
    again.set("InUse", True, "PodsUsingClaim", "used by pod(s) p")
    assert again.changed()
