"""`PathLookup`: the read side of the namespace: what a path is (`stat`), the merged listing of a
directory (S3 plus local files not uploaded yet), readdir attributes and close-to-open
revalidation of cached files; the S3 requests behind them go through `Listings`.

While S3 cannot be reached (a partition), revalidation serves the last known metadata: a lookup or
getattr whose cached answer expired asks S3 with a short deadline (or not at all while the store
is remembered as unreachable) and falls back to the cache, so creating and writing files keeps
landing in the local tier. Only a name the cache knows nothing about has to wait for S3. A lookup
in a directory whose listing expired re-lists it when it is small (one LIST refreshes every name)
instead of a HEAD and a LIST per name."""

from __future__ import annotations

import errno
import logging
import stat
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pyfuse3
import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.file_cache import FileCache
from razorfs.cache.metadata_cache import DirEntry, MetadataCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.fs.dir_marker import DirMarkers
from razorfs.fs.listings import Listings
from razorfs.fs.node import Node, join_path, split_path
from razorfs.store.base import ObjectInfo
from razorfs.store.errors import ObjectNotFound, StoreUnavailable, Throttled
from razorfs.store.object_attrs import AttrDefaults, ObjectAttrs, attrs_from_metadata, metadata_from_attrs

log = logging.getLogger(__name__)

T = TypeVar("T")

# A revalidation that has a cached answer to fall back on waits at most this long for S3.
REVALIDATE_TIMEOUT_S = 2.0


class _Offline(Exception):
    """S3 did not answer a revalidation (unreachable, throttled or too slow): serve the cache."""


class _NoKnowledge(Exception):
    """The cache knows nothing about a path: only S3 can answer."""


class PathLookup:
    def __init__(
        self,
        store: MeteredStore,
        cache: FileCache,
        meta: MetadataCache,
        key_for: Callable[[str], str],
        defaults: AttrDefaults,
    ) -> None:
        self.store = store
        self.cache = cache
        self.meta = meta
        self.key_for = key_for
        self.defaults = defaults
        self.root_key = key_for("")
        self._mounted_at = time.time()
        self.listings = Listings(store, cache, meta, key_for, self.dir_key)
        self.markers = DirMarkers(store, meta, key_for, self.listings.head)
        self.listings.folder_key = self.markers.folder_key

    def bind_nursery(self, nursery: trio.Nursery) -> None:
        """Where HEAD prefetches run; without one, nothing is fetched ahead."""
        self.listings.bind_nursery(nursery)

    @property
    def skipped_keys(self) -> int:
        """Keys left out of listings because they cannot be file names."""
        return self.listings.skipped_keys

    def dir_key(self, path: str) -> str:
        return self.key_for(path) + "/" if path else self.root_key

    def path_of_key(self, key: str) -> str:
        return key[len(self.root_key) :].rstrip("/") if self.root_key else key.rstrip("/")

    # -- reading the tree -----------------------------------------------------------------------

    async def listing(self, dir_path: str, fresh: bool = False) -> dict[str, DirEntry]:
        """Names in a directory: the S3 listing (cached for the TTL) plus local files not yet
        uploaded."""
        listing = await self.listings.s3_listing(dir_path, fresh)
        merged = dict(listing.entries)
        for f in self.cache.children_of(dir_path):
            # A clean file validated (uploaded or HEAD'ed) before the LIST began is in it unless
            # someone deleted it since; newer ones may have raced the LIST, so they are added.
            if not f.dirty and f.validated_at < listing.fetched_at:
                continue
            name = split_path(f.path)[1]
            merged[name] = DirEntry(name, False, f.size, f.attrs.mtime)
        return merged

    async def head(self, key: str) -> ObjectInfo | None:
        """What a HEAD of `key` says (None: no such object), cached and single-flight."""
        return await self.listings.head(key)

    def root_node(self) -> Node:
        d = self.defaults
        attrs = ObjectAttrs(stat.S_IFDIR | d.dir_mode, d.uid, d.gid, self._mounted_at)
        return Node("", 0, attrs)

    def node_of_cached(self, f: CachedFile) -> Node:
        return Node(f.path, f.size, f.attrs)

    async def _probe(self, call: Callable[[], Awaitable[T]]) -> T:
        """Runs a revalidation the caller can answer from the cache if S3 does not: raises
        _Offline at once while the store is remembered as unreachable, and when S3 fails
        (unavailable, throttled) or does not answer within REVALIDATE_TIMEOUT_S."""
        if self.store.unreachable:
            raise _Offline
        try:
            with trio.fail_after(REVALIDATE_TIMEOUT_S):
                return await call()
        except trio.TooSlowError:
            log.info("S3 did not answer a revalidation within %.1fs: serving cached metadata", REVALIDATE_TIMEOUT_S)
            self.store.note_unreachable()
            raise _Offline from None
        except (StoreUnavailable, Throttled) as err:
            log.info("S3 unreachable (%s: %s): serving cached metadata", type(err).__name__, err)
            self.store.note_unreachable()
            raise _Offline from err

    async def _head_now(self, key: str) -> ObjectInfo | None:
        try:
            return await self.store.head(key)
        except ObjectNotFound:
            return None

    async def revalidated(self, f: CachedFile) -> CachedFile | None:
        """Close-to-open: a clean cached file is checked against S3 once the TTL passed (another
        client may have replaced or deleted it); None when it is gone. While S3 cannot be reached
        the cached copy is served as it is."""
        key = self.key_for(f.path)
        listed = self._listed_unchanged(f, key)
        if listed is not None:
            self.cache.revalidate(f, listed, attrs_from_metadata(listed.metadata, listed.last_modified, self.defaults))
            return f
        try:
            info = await self._probe(lambda: self._head_now(key))
        except _Offline:
            return f
        if info is None:
            self.cache.forget(f)
            self.note_gone(f.path)
            self.meta.put_head(key, None)
            return None
        self.meta.put_head(key, info)
        attrs = attrs_from_metadata(info.metadata, info.last_modified, self.defaults)
        self.cache.revalidate(f, info, attrs)
        return f

    def _listed_unchanged(self, f: CachedFile, key: str) -> ObjectInfo | None:
        """What a HEAD would say of a clean cached file, when a fresh listing of its directory
        shows the very object cached (same ETag) and its metadata unchanged since; else None."""
        parent, name = split_path(f.path)
        listing = self.meta.listing(parent)
        entry = listing.entries.get(name) if listing is not None else None
        if entry is None or not entry.etag or entry.etag != f.base_etag or f.base_key != key:
            return None
        if not self.meta.stale_head(key)[0]:
            # Uploaded (or opened) by this node and not HEADed since: the listed object is ours,
            # with the metadata we gave it, unless S3 modified it after our write returned (a
            # metadata-only copy by another client keeps the ETag).
            if f.written_to_s3_at is not None and entry.last_modified > f.written_to_s3_at:
                return None
            mine = ObjectInfo(key, entry.size, entry.etag, entry.last_modified, metadata_from_attrs(f.attrs))
            self.meta.put_head(key, mine, s3_time=False)
        return self.meta.head_confirmed_by(key, entry)

    async def stat(self, path: str) -> Node | None:
        if path == "":
            return await self._root_stat()
        f = self.cache.get(path)
        if f is not None:
            if f.open_handles or not self.cache.needs_revalidation(f):
                return self.node_of_cached(f)
            checked = await self.revalidated(f)
            return None if checked is None else self.node_of_cached(checked)
        try:
            return await self._probe(lambda: self._stat_uncached(path))
        except _Offline:
            pass
        try:
            return self._stat_from_cache(path)
        except _NoKnowledge:
            return await self._stat_uncached(path)  # only S3 can tell: it may fail (EIO)

    async def _root_stat(self) -> Node:
        try:
            source = await self._probe(lambda: self._dir_attrs_source(""))
        except _Offline:
            _, marker = self.meta.stale_head(self.root_key) if self.root_key else (True, None)
            _, source = self.markers.cached_attrs_source("", marker, stale=True)
        if source is None:
            return self.root_node()
        attrs = attrs_from_metadata(source.metadata, source.last_modified, self.defaults, directory=True)
        return Node("", 0, attrs)

    async def _dir_attrs_source(self, path: str, folder_listed: bool | None = None) -> ObjectInfo | None:
        """The object holding a directory's attributes (see DirMarkers); None for defaults."""
        if not self.dir_key(path):
            # The root of a volume at the bucket root has no marker, only (maybe) a companion.
            return await self.markers.attrs_source(path, None, True if folder_listed is None else folder_listed)
        marker = await self.head(self.dir_key(path))
        return await self.markers.attrs_source(path, marker, folder_listed)

    def _stat_from_cache(self, path: str) -> Node | None:
        """What the cache last knew about a path, however old (S3 cannot be asked)."""
        known, info = self.meta.stale_head(self.key_for(path))
        if known and info is not None:
            return self._file_node(path, info)
        parent, name = split_path(path)
        listing = self.meta.stale_listing(parent)
        if listing is not None:
            entry = listing.entries.get(name)
            if entry is None:
                return None
            if entry.is_dir:
                return self._cached_dir_node(path)
            attrs = attrs_from_metadata({}, entry.last_modified or self._mounted_at, self.defaults)
            return Node(path, entry.size, attrs, exact=False)
        marker_known, marker = self.meta.stale_head(self.dir_key(path))
        if (marker_known and marker is not None) or self.meta.stale_listing(path) is not None:
            return self._cached_dir_node(path)
        if known:
            return None  # known absent as a file, never seen as a directory
        raise _NoKnowledge

    def _cached_dir_node(self, path: str) -> Node:
        _, marker = self.meta.stale_head(self.dir_key(path))
        _, source = self.markers.cached_attrs_source(path, marker, stale=True)
        return self._dir_node_of(path, source)

    async def _stat_uncached(self, path: str) -> Node | None:
        parent, name = split_path(path)
        listing = self.meta.listing(parent)
        if listing is None and not self._head_answers(parent, name):
            listing = await self.listings.relisted_if_small(parent)
        if listing is not None:
            # A fresh listing answers negative lookups without a request, and vouches for a HEAD
            # of the same object fetched earlier.
            listing.lookups += 1
            entry = listing.entries.get(name)
            if entry is None:
                return None
            key = self.dir_key(path) if entry.is_dir else self.key_for(path)
            confirmed = None if entry.is_dir else self.meta.head_confirmed_by(key, entry)
            if confirmed is not None:
                return self._file_node(path, confirmed)
            self.listings.prefetch_heads(parent, listing, name)
            if entry.is_dir:
                return await self._dir_node(path, entry.folder)
        # Otherwise one HEAD per name, as s3fs does: re-listing a directory of 10,000 entries
        # for each lookup once the TTL passed would be far slower.
        info = await self.head(self.key_for(path))
        if info is not None:
            return self._file_node(path, info)
        if listing is None and await self.listings.has_children(path):
            return await self._dir_node(path)
        return None

    def _head_answers(self, parent: str, name: str) -> bool:
        """Whether a lookup in a directory whose listing expired is answered by the name's HEAD
        rather than a new LIST: the last listing showed a file whose HEAD is fresh in the cache or
        was never fetched (its attributes need that HEAD whatever a new listing says; the names
        after it are HEADed ahead, as from a fresh listing). So an `ls -l` slower than the TTL
        lists the directory once, not once per TTL. A HEAD a new listing could vouch for (fetched
        earlier, expired) still re-lists."""
        stale = self.meta.stale_listing(parent)
        entry = stale.entries.get(name) if stale is not None else None
        if stale is None or entry is None or entry.is_dir:
            return False
        key = self.key_for(join_path(parent, name))
        known, info = self.meta.head(key)
        if known:
            return info is not None
        if self.meta.stale_head(key)[0]:
            return False
        self.listings.prefetch_heads(parent, stale, name)
        return True

    def _file_node(self, path: str, info: ObjectInfo) -> Node:
        return Node(path, info.size, attrs_from_metadata(info.metadata, info.last_modified, self.defaults))

    async def _dir_node(self, path: str, folder_listed: bool | None = None) -> Node:
        return self._dir_node_of(path, await self._dir_attrs_source(path, folder_listed))

    def _dir_node_of(self, path: str, marker: ObjectInfo | None) -> Node:
        if marker is None:
            # An implicit directory (objects below it, no marker): the mount's defaults.
            attrs = attrs_from_metadata({}, self._mounted_at, self.defaults, directory=True)
        else:
            attrs = attrs_from_metadata(marker.metadata, marker.last_modified, self.defaults, directory=True)
        return Node(path, 0, attrs)

    def listed_node(self, dir_path: str, entry: DirEntry) -> Node:
        """A readdir entry's attributes without a HEAD: exact when known, else marked inexact."""
        path = join_path(dir_path, entry.name)
        f = self.cache.get(path)
        if f is not None:
            if f.dirty or f.open_handles:
                return self.node_of_cached(f)
            # Clean: the listing may be newer than our copy; let the kernel ask getattr.
            return Node(path, entry.size, f.attrs, exact=False)
        key = self.dir_key(path) if entry.is_dir else self.key_for(path)
        known, info = self.meta.head(key)
        if not entry.is_dir and not known:
            info = self.meta.head_confirmed_by(key, entry)
            known = info is not None
        if entry.is_dir and known and entry.folder:
            known, info = self.markers.cached_attrs_source(path, info, stale=False)
        if known and info is not None:
            attrs = attrs_from_metadata(info.metadata, info.last_modified, self.defaults, directory=entry.is_dir)
            return Node(path, 0 if entry.is_dir else info.size, attrs)
        attrs = attrs_from_metadata({}, entry.last_modified or self._mounted_at, self.defaults, directory=entry.is_dir)
        return Node(path, entry.size, attrs, exact=False)

    async def readlink(self, path: str) -> bytes:
        info = await self.head(self.key_for(path))
        if info is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        # Whole and pinned to the version looked at: the target is checked against its checksum.
        return await self.store.get_object(self.key_for(path), if_match=info.etag)

    # -- recording what changed -----------------------------------------------------------------

    def note_file(self, path: str, size: int, mtime: float) -> None:
        parent, name = split_path(path)
        self.meta.add_entry(parent, DirEntry(name, False, size, mtime))
        self.meta.forget_head(self.key_for(path))

    def note_gone(self, path: str) -> None:
        parent, name = split_path(path)
        self.meta.remove_entry(parent, name)
        self.meta.forget_head(self.key_for(path))
        self.meta.forget_head(self.dir_key(path))
        self.meta.forget_head(self.markers.folder_key(path))
