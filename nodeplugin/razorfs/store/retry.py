"""`RetryPolicy`: bounded attempts with exponential backoff and full jitter, used by the S3 store
for every request (botocore's own retries are switched off so that errors while reading a
response body, which botocore never retries, follow the same policy)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class RetryableFailure(Exception):
    """Raised by an attempt to ask for another try; `error` is raised if attempts run out."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay_s(self, failed_attempts: int) -> float:
        """Sleep before the next attempt after `failed_attempts` (>= 1) failures: uniform in
        [0, min(max, base * 2^(n-1))] ("full jitter"), so clients that failed together spread out."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2.0 ** (failed_attempts - 1)))
        return float(self.rng.uniform(0.0, ceiling))

    def worst_case_wait_s(self) -> float:
        """Upper bound of the total sleep before giving up (what a partition must outlast)."""
        return sum(
            min(self.max_delay_s, self.base_delay_s * (2.0 ** (n - 1))) for n in range(1, self.max_attempts)
        )

    def run(
        self,
        attempt: Callable[[], T],
        on_retry: Callable[[Exception, float], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Calls `attempt` until it returns or raises something other than RetryableFailure;
        after `max_attempts` retryable failures raises the last one's `error`."""
        failures = 0
        while True:
            try:
                return attempt()
            except RetryableFailure as failure:
                failures += 1
                if failures >= self.max_attempts:
                    raise failure.error from None
                delay = self.delay_s(failures)
                if on_retry is not None:
                    on_retry(failure.error, delay)
                sleep(delay)
