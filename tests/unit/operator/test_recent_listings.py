"""One listing answers every resync that asks for it within the reuse window; pods using a claim."""

from __future__ import annotations

import asyncio

import pytest

from razorfs_operator.cluster import claim_users
from razorfs_operator.recent_listings import RecentListings


def test_concurrent_and_close_asks_share_one_call_and_a_later_one_asks_again() -> None:
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    async def scenario() -> tuple[list[int], int]:
        recent: RecentListings[int] = RecentListings(reuse_s=0.2)
        together = await asyncio.gather(*(recent.get("ns", fetch) for _ in range(5)))
        await asyncio.sleep(0.3)
        return list(together), await recent.get("ns", fetch)

    together, later = asyncio.run(scenario())
    assert together == [1] * 5 and later == 2


def test_a_failing_listing_fails_every_asker_of_the_window() -> None:
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        raise RuntimeError("apiserver down")

    async def scenario() -> None:
        recent: RecentListings[int] = RecentListings(reuse_s=10)
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await recent.get("ns", fetch)

    asyncio.run(scenario())
    assert calls == 1


def test_claim_users_are_the_unfinished_pods_that_mount_the_claim() -> None:
    def pod(name: str, claim: str, phase: str = "Running") -> dict[str, object]:
        return {
            "metadata": {"name": name},
            "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase},
        }

    pods = [pod("b", "data"), pod("a", "data"), pod("done", "data", "Succeeded"), pod("other", "logs")]
    assert claim_users(pods, "data") == ["a", "b"]
