"""`MetadataCache`: what the filesystem learned from S3 about names, kept for the metadata TTL:
directory listings (name -> file or directory) and HEAD results (size, ETag, user metadata).
The daemon's own changes update the cache in place, so a fresh listing stays true. Expired
entries are kept (until forgotten) as the last known state: served when S3 cannot be reached."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from razorfs.store.base import ObjectInfo


@dataclass
class DirEntry:
    name: str
    is_dir: bool
    size: int = 0
    last_modified: float = 0.0


@dataclass
class Listing:
    entries: dict[str, DirEntry]
    fetched_at: float = field(default_factory=time.monotonic)


class MetadataCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._listings: dict[str, Listing] = {}
        self._heads: dict[str, tuple[ObjectInfo | None, float]] = {}

    def _fresh(self, fetched_at: float) -> bool:
        return time.monotonic() - fetched_at < self.ttl_s

    def listing(self, dir_path: str) -> Listing | None:
        listing = self._listings.get(dir_path)
        if listing is None or not self._fresh(listing.fetched_at):
            return None
        return listing

    def stale_listing(self, dir_path: str) -> Listing | None:
        """The last listing known, however old (for when S3 cannot be asked)."""
        return self._listings.get(dir_path)

    def put_listing(self, dir_path: str, listing: Listing) -> None:
        self._listings[dir_path] = listing

    def add_entry(self, dir_path: str, entry: DirEntry) -> None:
        listing = self._listings.get(dir_path)
        if listing is not None:
            listing.entries[entry.name] = entry

    def remove_entry(self, dir_path: str, name: str) -> None:
        listing = self._listings.get(dir_path)
        if listing is not None:
            listing.entries.pop(name, None)

    def forget_listing(self, dir_path: str) -> None:
        self._listings.pop(dir_path, None)

    def forget_listings_under(self, dir_path: str) -> None:
        prefix = dir_path + "/" if dir_path else ""
        for path in [p for p in self._listings if p == dir_path or p.startswith(prefix)]:
            del self._listings[path]

    def head(self, key: str) -> tuple[bool, ObjectInfo | None]:
        """(known, info): known False means ask S3; info None means known to be absent."""
        found = self._heads.get(key)
        if found is None or not self._fresh(found[1]):
            return False, None
        return True, found[0]

    def stale_head(self, key: str) -> tuple[bool, ObjectInfo | None]:
        """Like `head`, however old the answer (for when S3 cannot be asked)."""
        found = self._heads.get(key)
        if found is None:
            return False, None
        return True, found[0]

    def put_head(self, key: str, info: ObjectInfo | None) -> None:
        self._heads[key] = (info, time.monotonic())

    def forget_head(self, key: str) -> None:
        self._heads.pop(key, None)

    def forget_all(self) -> None:
        self._listings.clear()
        self._heads.clear()
