"""`StoreCounters`: what a store did (requests, errors, retries, bytes up and down), read by the
cache layer for `razorfs stats` and the metrics endpoint. Thread-safe; reads are snapshots."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class CounterSnapshot:
    requests: int = 0
    errors: int = 0  # failed attempts, retried or not
    retries: int = 0
    bytes_uploaded: int = 0
    bytes_downloaded: int = 0
    last_error: str = ""  # typed error name and message of the latest failed attempt (no secrets)


@dataclass
class StoreCounters:
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _state: CounterSnapshot = field(default_factory=CounterSnapshot)

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return self._state

    def count_request(self) -> None:
        self._add(requests=1)

    def count_retry(self) -> None:
        self._add(retries=1)

    def count_uploaded(self, n: int) -> None:
        self._add(bytes_uploaded=n)

    def count_downloaded(self, n: int) -> None:
        self._add(bytes_downloaded=n)

    def count_error(self, description: str) -> None:
        with self._lock:
            self._state = replace(self._state, errors=self._state.errors + 1, last_error=description)

    def _add(self, **deltas: int) -> None:
        with self._lock:
            s = self._state
            self._state = replace(s, **{name: getattr(s, name) + n for name, n in deltas.items()})
