"""`MetadataCache`: what the filesystem learned from S3 about names, kept for the metadata TTL:
directory listings (name -> file or directory, with size, ETag and LastModified) and HEAD results
(size, ETag, user metadata). The daemon's own changes update the cache in place, so a fresh
listing stays true. Expired entries are kept (until forgotten) as the last known state: served
when S3 cannot be reached.

A HEAD result outlives the TTL while listings confirm it: an object's user metadata cannot change
without a new ETag or a new LastModified (a metadata rewrite is a copy onto itself), so a fresh
listing showing both unchanged vouches for the whole HEAD, and `ls -l` of a listed directory
needs no HEAD per entry twice. With `SavedHeads`, those answers also outlive the mount: each one
S3's time is known for is queued there, and `adopt_saved` brings them back as expired answers that
only a listing can vouch for."""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass, field

from razorfs.cache.saved_heads import SavedHeads
from razorfs.store.base import ObjectInfo


@dataclass
class DirEntry:
    name: str
    is_dir: bool
    size: int = 0
    last_modified: float = 0.0
    etag: str = ""  # from the listing; empty for directories and for entries this node added
    # A directory whose `<name>_$folder$` companion (its attributes, see fs.dir_marker) was listed.
    folder: bool = False


@dataclass
class Listing:
    entries: dict[str, DirEntry]
    fetched_at: float = field(default_factory=time.monotonic)
    # Lookups this listing answered, or was found too old to answer (see Listings.relisted_if_small).
    lookups: int = 0
    # The last name whose HEAD a sweep in readdir order claimed ahead (Listings.prefetch_heads).
    prefetched_to: str = ""
    # The names sorted (readdir's order), built on first use and dropped when entries change.
    _order: list[str] | None = field(default=None, repr=False, compare=False)

    def names_from(self, name: str, count: int) -> list[str]:
        """Up to `count` names in readdir order, starting at `name` (or where it would be)."""
        if self._order is None:
            self._order = sorted(self.entries)
        start = bisect.bisect_left(self._order, name)
        return self._order[start : start + count]

    def put(self, entry: DirEntry) -> None:
        if entry.name not in self.entries:
            self._order = None
        self.entries[entry.name] = entry

    def remove(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self._order = None


class MetadataCache:
    def __init__(self, ttl_s: float, saved: SavedHeads | None = None) -> None:
        self.ttl_s = ttl_s
        self.saved = saved
        self._listings: dict[str, Listing] = {}
        # key -> (info, when fetched, S3's LastModified of it when known, whether `saved` has it).
        # Records made from this node's own writes carry the local clock instead (S3 does not
        # return the time of a PUT): the first listing with the same ETag supplies S3's time.
        self._heads: dict[str, tuple[ObjectInfo | None, float, float | None, bool]] = {}
        # key -> this node's clock when its own write of the key returned: a listing whose
        # LastModified is later shows someone else's write since (a metadata-only copy keeps the
        # ETag), so it cannot lend its time to our record.
        self._written_at: dict[str, float] = {}

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
            listing.put(entry)

    def remove_entry(self, dir_path: str, name: str) -> None:
        listing = self._listings.get(dir_path)
        if listing is not None:
            listing.remove(name)

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

    def put_head(self, key: str, info: ObjectInfo | None, *, s3_time: bool = True) -> None:
        """`s3_time`: the record's last_modified is S3's (a HEAD), not this node's clock (a write)."""
        s3_modified = info.last_modified if info is not None and s3_time else None
        saved = False
        if self.saved is not None:
            if info is not None and s3_modified is not None and not key.endswith("/"):
                saved = self.saved.save(info, s3_modified)
            else:
                # Gone, or changed here and S3's time of it not known yet. (Directory markers are
                # never saved: a listing shows them as prefixes, without an ETag to vouch.)
                self.saved.drop(key)
        if info is not None and not s3_time:
            self._written_at[key] = time.time()
        else:
            self._written_at.pop(key, None)
        self._heads[key] = (info, time.monotonic(), s3_modified, saved)

    def adopt_saved(self, info: ObjectInfo, s3_modified: float) -> None:
        """An answer saved by an earlier mount, kept as expired (only a listing that shows the
        same ETag and LastModified vouches for it); what this mount learned itself wins."""
        if info.key not in self._heads:
            self._heads[info.key] = (info, -math.inf, s3_modified, True)

    def head_confirmed_by(self, key: str, entry: DirEntry) -> ObjectInfo | None:
        """The cached HEAD of `key`, however old, if the listing `entry` shows the same object
        (same ETag and LastModified); else None (a HEAD is needed)."""
        found = self._heads.get(key)
        if found is None or not entry.etag:
            return None
        info, fetched_at, s3_modified, saved = found
        if info is None or info.etag != entry.etag:
            return None
        if s3_modified is None:
            # Our own write: adopt S3's time from the first listing that shows our ETag, unless
            # that time is later than our write (another client rewrote the metadata since).
            written_at = self._written_at.get(key)
            if written_at is None or entry.last_modified > written_at:
                return None
            del self._written_at[key]
            s3_modified = entry.last_modified
        elif int(s3_modified) != int(entry.last_modified):
            # HEAD's Last-Modified has whole seconds, a listing's may have milliseconds.
            return None
        if not saved and self.saved is not None:
            saved = self.saved.save(info, s3_modified)
        self._heads[key] = (info, fetched_at, s3_modified, saved)
        return info

    def forget_head(self, key: str) -> None:
        self._heads.pop(key, None)
        self._written_at.pop(key, None)
        if self.saved is not None:
            self.saved.drop(key)

    def forget_all(self) -> None:
        self._listings.clear()
        self._heads.clear()
        self._written_at.clear()
