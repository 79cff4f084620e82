"""How one handler run turns its findings into Ready, phase and events-worthy changes."""

from __future__ import annotations

from typing import Any

from razorfs.volume_spec import NodeVolumeState, RazorVolumeStatus, WarmupProgress
from razorfs_operator.errors import CredentialsRejected, S3Unreachable
from razorfs_operator.status_draft import StatusDraft, summarize_nodes, warmup_progress


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


def test_node_figures_are_summed_for_the_wide_columns() -> None:
    nodes = [
        {"name": "a", "state": "Mounted", "cachedBytes": 4096, "dirtyBytes": 512},
        {"name": "b", "state": "Unreachable", "cachedBytes": 100, "dirtyBytes": 7},
        {"name": "c", "state": "Mounted"},
    ]
    draft = StatusDraft.from_body(body({"nodes": nodes}))
    bound_and_reachable(draft)
    draft.conclude(has_claim=True, has_volume=True)
    status = draft.status
    assert (status.mounted_nodes, status.cached_bytes, status.dirty_bytes) == (2, 4196, 519)
    assert status.warmup is None


def test_warmup_percent_counts_bytes_when_known_else_files() -> None:
    assert warmup_progress("Warming", 1, 4, 300, 1000).percent == 30
    assert warmup_progress("Warming", 1, 4).percent == 25
    assert warmup_progress("Warming").percent == 0
    assert warmup_progress("Warmed").percent == 100


def test_volume_warmup_fails_if_a_node_failed_and_warms_while_one_warms() -> None:
    def total(*node_warmups: WarmupProgress) -> WarmupProgress | None:
        status = RazorVolumeStatus(
            nodes=[NodeVolumeState(name=f"n{i}", state="Mounted", warmup=w) for i, w in enumerate(node_warmups)]
        )
        summarize_nodes(status)
        return status.warmup

    warmed = warmup_progress("Warmed", 2, 2, 100, 100)
    warming = warmup_progress("Warming", 1, 2, 50, 300)
    failed = warmup_progress("Failed", 0, 2, 0, 0, "UNAVAILABLE: node gone")
    both = total(warmed, warming)
    assert both is not None
    assert (both.state, both.bytes_done, both.bytes_total, both.percent) == ("Warming", 150, 400, 37)
    assert total(warmed, warmed) == warmup_progress("Warmed", 4, 4, 200, 200)
    one_failed = total(warmed, failed, warming)
    assert one_failed is not None and one_failed.state == "Failed"
    assert one_failed.message == "node n1: UNAVAILABLE: node gone"
