"""Listings that the periodic resyncs of many volumes ask for within moments of each other (the node
plugin pods, the pods of a namespace, one node's staged volumes): one call answers every asker for
a few seconds instead of one call per volume per round. Only the periodic refresh uses them;
change handlers and deletion read fresh."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

# Long enough to merge one resync round's asks, short enough that nobody notices the age.
LISTING_REUSE_S = 2.0


class RecentListings(Generic[T]):
    def __init__(self, reuse_s: float = LISTING_REUSE_S) -> None:
        self.reuse_s = reuse_s
        self._entries: dict[Hashable, tuple[float, asyncio.Future[T]]] = {}

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """The answer of `fetch` for `key`, from a call made at most `reuse_s` ago if there was
        one (failures included, so a failing server is not asked once per volume either)."""
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] > self.reuse_s:
            entry = (now, asyncio.ensure_future(fetch()))
            self._entries[key] = entry
            for old in [k for k, (at, _) in self._entries.items() if now - at > self.reuse_s]:
                del self._entries[old]
        # Shielded: one asker being cancelled must not cancel the others' answer.
        return await asyncio.shield(entry[1])
