"""`Listings`: what S3 says about names, asked as rarely as possible. Directory listings and HEADs
are single-flight (concurrent askers of one directory or key share one request) and recorded in
the `MetadataCache`; a stat of a listed entry keeps HEADs of the entries after it running.

Attributes of listed entries: a fresh listing answers negative lookups, and its ETag and
LastModified vouch for a HEAD fetched earlier (see `MetadataCache`), so only objects never seen
(or changed since) are HEADed; the first listing of a directory in a mount brings back the
answers an earlier mount saved for its keys (`SavedHeads`), so after a remount too. Those HEADs
run in parallel: a stat of a listed entry keeps the HEADs of the next HEAD_PREFETCH_WINDOW
entries in readdir order running (the order `ls -l` and `find -ls` stat them in), refilled at half.
Keys whose last component cannot be a file name (empty, `.`, `..`, longer than NAME_MAX, with a NUL) are
left out of listings: no lookup of them could succeed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from razorfs.cache.file_cache import FileCache
from razorfs.cache.metadata_cache import DirEntry, Listing, MetadataCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.fs.dir_marker import folder_base_name
from razorfs.fs.node import is_valid_name, join_path
from razorfs.store.base import ObjectInfo
from razorfs.store.errors import ObjectNotFound, StoreError, StoreUnavailable, Throttled

log = logging.getLogger(__name__)

# A stat of a listed entry keeps HEADs of up to this many entries from it on (readdir order) in
# flight; they run on the store's bounded worker pool.
HEAD_PREFETCH_WINDOW = 32
# A lookup in a directory whose listing expired re-lists it while it had at most this many entries
# (a few LIST pages); larger directories are asked one name at a time, unless they are busy (below).
RELIST_MAX_ENTRIES = 3000
# A larger directory is re-listed too once it had at least one lookup per this many entries since
# its last listing: a burst of creates in a big folder would otherwise cost a HEAD per new name,
# and one LIST page of 1,000 keys costs the daemon about as much CPU as 25 HEADs (botocore
# parsing; measured 2026-11-28: 32 ms a page, 1.3-1.8 ms a HEAD).
RELIST_ENTRIES_PER_LOOKUP = 40
# Remembered names of skipped keys (each is logged once); bounded so odd buckets cannot grow it.
MAX_SKIPPED_KEYS_REMEMBERED = 10_000


class Listings:
    def __init__(
        self,
        store: MeteredStore,
        cache: FileCache,
        meta: MetadataCache,
        key_for: Callable[[str], str],
        dir_key: Callable[[str], str],
    ) -> None:
        self.store = store
        self.cache = cache
        self.meta = meta
        self.key_for = key_for
        self.dir_key = dir_key
        # Set by the namespace once its DirMarkers exist: the `_$folder$` companion key of a path.
        self.folder_key: Callable[[str], str] = lambda path: ""
        self.skipped_keys = 0  # keys left out of listings because they cannot be file names
        self._skipped_logged: set[str] = set()
        # Requests in flight, so that concurrent askers of the same key or directory share one.
        self._heads_in_flight: dict[str, trio.Event] = {}
        self._listings_in_flight: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        # Directory keys whose saved HEAD answers were brought back in this mount.
        self._saved_adopted: set[str] = set()

    def bind_nursery(self, nursery: trio.Nursery) -> None:
        """Where HEAD prefetches run; without one, nothing is fetched ahead."""
        self._nursery = nursery

    # -- listings ---------------------------------------------------------------------------------

    async def s3_listing(self, dir_path: str, fresh: bool = False) -> Listing:
        """The directory's S3 listing: cached for the TTL; past it, the last one while S3 cannot
        be reached."""
        if fresh:
            return await self._list_from_s3(dir_path)
        listing = self.meta.listing(dir_path)
        if listing is not None:
            return listing
        stale = self.meta.stale_listing(dir_path)
        if stale is None:
            return await self.shared_list(dir_path)
        if self.store.unreachable:
            return stale
        # No deadline here (a LIST of a large directory may rightly take long): a failure after
        # the retry budget, or the store already known unreachable, serves the last listing.
        try:
            return await self.shared_list(dir_path)
        except (StoreUnavailable, Throttled) as err:
            log.info("listing %r from the cache: S3 unreachable (%s: %s)", dir_path, type(err).__name__, err)
            return stale

    async def shared_list(self, dir_path: str) -> Listing:
        """A listing from S3, or the one another task is fetching right now."""
        pending = self._listings_in_flight.get(dir_path)
        if pending is not None:
            await pending.wait()
            listing = self.meta.listing(dir_path)
            if listing is not None:
                return listing
        done = self._listings_in_flight[dir_path] = trio.Event()
        try:
            return await self._list_from_s3(dir_path)
        finally:
            if self._listings_in_flight.get(dir_path) is done:
                del self._listings_in_flight[dir_path]
            done.set()

    async def relisted_if_small(self, dir_path: str) -> Listing | None:
        """A new listing of a directory last seen with few entries, or with many lookups for its
        size; None for a large quiet one or one never listed (the caller asks S3 about the one
        name, and the lookup counts towards re-listing)."""
        stale = self.meta.stale_listing(dir_path)
        if stale is None:
            return None
        size = len(stale.entries)
        if size > RELIST_MAX_ENTRIES and stale.lookups * RELIST_ENTRIES_PER_LOOKUP < size:
            stale.lookups += 1
            return None
        return await self.shared_list(dir_path)

    async def _list_from_s3(self, dir_path: str) -> Listing:
        dkey = self.dir_key(dir_path)
        started = time.monotonic()  # the listing is as old as the moment the LIST began
        entries: dict[str, DirEntry] = {}
        folders: set[str] = set()
        for page in await self.store.list_all(dkey, "/"):
            for obj in page.objects:
                name = obj.key[len(dkey) :]
                folder = folder_base_name(name)
                if folder is not None:
                    folders.add(folder)  # a directory's attributes (fs.dir_marker), not a file
                elif self._listable(name, obj.key):
                    entries[name] = DirEntry(name, False, obj.size, obj.last_modified, obj.etag)
            for prefix in page.prefixes:
                name = prefix[len(dkey) :].rstrip("/")
                if self._listable(name, prefix):
                    entries[name] = DirEntry(name, True)  # a directory wins over a same-named file
        for name in folders:
            if self._listable(name, dkey + name):  # "" is the listed directory's own companion
                entries[name] = DirEntry(name, True, folder=True)
        listing = Listing(entries, fetched_at=started)
        await self._adopt_saved_heads(dkey, entries)
        self.meta.put_listing(dir_path, listing)
        return listing

    async def _adopt_saved_heads(self, dkey: str, entries: dict[str, DirEntry]) -> None:
        """Before the first listing of a directory in this mount answers: the HEADs an earlier
        mount saved for its listed files, which the listing's ETags and LastModified then vouch
        for (one read of the cache's database, on a worker thread)."""
        saved = self.meta.saved
        if saved is None or not saved.enabled or dkey in self._saved_adopted:
            return
        self._saved_adopted.add(dkey)
        for info, s3_modified in await saved.saved_under(dkey):
            entry = entries.get(info.key[len(dkey) :])
            if entry is not None and not entry.is_dir:
                self.meta.adopt_saved(info, s3_modified)

    def _listable(self, name: str, key: str) -> bool:
        if is_valid_name(name):
            return True
        if name and key not in self._skipped_logged:
            # The directory's own marker (name "") is expected; anything else is an odd key.
            self.skipped_keys += 1
            if len(self._skipped_logged) < MAX_SKIPPED_KEYS_REMEMBERED:
                self._skipped_logged.add(key)
                log.debug("not listing %r: its last component is not a valid file name", key)
        return False

    async def has_children(self, path: str) -> bool:
        """Whether anything is below `path` (an implicit directory): its marker, or a LIST of one
        key (the kernel asks this of a path's directories again each TTL; a full page of a large
        directory costs far more to parse than the HEADs of its entries)."""
        known, marker = self.meta.head(self.dir_key(path))
        if known and marker is not None:
            return True
        page = await self.store.list_first_page(self.dir_key(path), "/", page_keys=1)
        return page is not None and bool(page.objects or page.prefixes)

    # -- HEADs ------------------------------------------------------------------------------------

    async def head(self, key: str) -> ObjectInfo | None:
        known, info = self.meta.head(key)
        if known:
            return info
        pending = self._heads_in_flight.get(key)
        if pending is not None:
            await pending.wait()
            known, info = self.meta.head(key)
            if known:
                return info
        done = self._heads_in_flight[key] = trio.Event()
        return await self._head_into_cache(key, done)

    def head_pending(self, key: str) -> bool:
        """Whether a HEAD of `key` is in flight or its answer is cached."""
        return key in self._heads_in_flight or self.meta.head(key)[0]

    async def _head_into_cache(self, key: str, done: trio.Event) -> ObjectInfo | None:
        """One HEAD of `key`, recorded in the metadata cache; then releases the claim `done`."""
        try:
            try:
                info = await self.store.head(key)
            except ObjectNotFound:
                info = None
            self.meta.put_head(key, info)
            return info
        finally:
            if self._heads_in_flight.get(key) is done:
                del self._heads_in_flight[key]
            done.set()

    def prefetch_heads(self, dir_path: str, listing: Listing, name: str) -> None:
        """Keeps HEADs running ahead of a sweep in readdir order: once fewer than half of the
        HEAD_PREFETCH_WINDOW names from `name` on were claimed before, starts the HEADs of the
        whole window whose attributes are not known. (Refilling only when the window was used up
        made a sweep wait for a whole batch every 32 entries.)"""
        if self._nursery is None:
            return
        half = listing.names_from(name, HEAD_PREFETCH_WINDOW // 2)
        if not half or half[-1] <= listing.prefetched_to:
            return
        window = listing.names_from(name, HEAD_PREFETCH_WINDOW)
        listing.prefetched_to = window[-1]
        for other in window:
            entry = listing.entries.get(other)
            path = join_path(dir_path, other)
            if entry is None or self.cache.get(path) is not None:
                continue
            keys = [self.dir_key(path)] if entry.is_dir else [self.key_for(path)]
            if entry.folder:
                keys.append(self.folder_key(path))
            for key in keys:
                if key in self._heads_in_flight or self.meta.head(key)[0]:
                    continue
                if not entry.is_dir and self.meta.head_confirmed_by(key, entry) is not None:
                    continue
                self._heads_in_flight[key] = trio.Event()  # claimed now; the task asks S3
                self._nursery.start_soon(self._prefetch_head, key)

    async def _prefetch_head(self, key: str) -> None:
        try:
            await self._head_into_cache(key, self._heads_in_flight[key])
        except StoreError as err:
            # Only a guess ahead: the stat that needs this key asks again and reports the error.
            log.debug("HEAD prefetch of %r failed: %s", key, type(err).__name__)
