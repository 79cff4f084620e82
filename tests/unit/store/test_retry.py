"""The retry policy: bounded attempts, exponential backoff with full jitter, last error raised."""

from __future__ import annotations

import random

import pytest

from razorfs.store.errors import StoreUnavailable, Throttled
from razorfs.store.retry import RetryableFailure, RetryPolicy


def test_delays_grow_exponentially_up_to_the_cap_and_are_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.1, max_delay_s=1.0, rng=random.Random(1))
    for failures, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        samples = [policy.delay_s(failures) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # full jitter spreads over the whole window
        assert min(samples) < ceiling * 0.2
    assert policy.worst_case_wait_s() == pytest.approx(0.1 + 0.2 + 0.4 + 0.8 + 1.0 * 5)


def test_succeeds_after_transient_failures_and_reports_each_retry() -> None:
    policy = RetryPolicy(max_attempts=5, rng=random.Random(0))
    outcomes: list[Exception | str] = [Throttled("slow"), StoreUnavailable("reset"), "ok"]
    retried: list[tuple[str, float]] = []
    slept: list[float] = []

    def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise RetryableFailure(outcome)
        return outcome

    result = policy.run(attempt, lambda err, d: retried.append((type(err).__name__, d)), slept.append)
    assert result == "ok"
    assert [name for name, _ in retried] == ["Throttled", "StoreUnavailable"]
    assert slept == [d for _, d in retried]


def test_gives_up_after_max_attempts_with_the_last_typed_error() -> None:
    policy = RetryPolicy(max_attempts=4)
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise RetryableFailure(StoreUnavailable(f"attempt {calls}"))

    with pytest.raises(StoreUnavailable, match="attempt 4"):
        policy.run(attempt, sleep=lambda _: None)
    assert calls == 4


def test_non_retryable_errors_propagate_at_once() -> None:
    calls = 0

    def attempt() -> None:
        nonlocal calls
        calls += 1
        raise KeyError("boom")

    with pytest.raises(KeyError):
        RetryPolicy(max_attempts=5).run(attempt, sleep=lambda _: None)
    assert calls == 1
