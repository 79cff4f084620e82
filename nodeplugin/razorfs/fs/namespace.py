"""`Namespace`: paths of the volume and what they are (file, directory, symlink) from S3 listings,
HEADs and the local cache, plus the name operations that change S3 directly: mkdir/rmdir (markers),
unlink, symlink, metadata updates and rename. A file rename is a server-side copy plus delete; a
directory rename moves every object below it one by one and is therefore NOT atomic: a crash
midway leaves some entries under the old name and some under the new one, none lost.

While S3 cannot be reached (a partition), revalidation serves the last known metadata: a lookup or
getattr whose cached answer expired asks S3 with a short deadline (or not at all while the store
is remembered as unreachable) and falls back to the cache, so creating and writing files keeps
landing in the local tier. Only a name the cache knows nothing about has to wait for S3.

Attributes of listed entries: a fresh listing answers negative lookups, and its ETag and
LastModified vouch for a HEAD fetched earlier (see `MetadataCache`), so only objects never seen
(or changed since) are HEADed. Those HEADs run in parallel: the first stat of a listed entry also
fetches the next HEAD_PREFETCH_WINDOW entries in readdir order, which is the order `ls -l` and
`find -ls` stat them in. A lookup in a directory whose listing expired re-lists it when it is small
(one LIST refreshes every name) instead of a HEAD and a LIST per name.

Keys whose last component cannot be a file name (empty, `.`, `..`, longer than NAME_MAX, with a
NUL) are left out of listings: no lookup of them could succeed."""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pyfuse3
import trio

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.file_cache import FileCache
from razorfs.cache.metadata_cache import DirEntry, Listing, MetadataCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.fs.dir_marker import DirMarkers, folder_base_name
from razorfs.store.base import ObjectInfo
from razorfs.store.errors import ObjectNotFound, StoreError, StoreUnavailable, Throttled
from razorfs.store.object_attrs import AttrDefaults, ObjectAttrs, attrs_from_metadata, metadata_from_attrs

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME_MAX = 255
# A revalidation that has a cached answer to fall back on waits at most this long for S3.
REVALIDATE_TIMEOUT_S = 2.0
# The first stat of a listed entry without a known HEAD starts HEADs of this many entries from it
# on (readdir order); they run on the store's bounded worker pool.
HEAD_PREFETCH_WINDOW = 32
# A lookup in a directory whose listing expired re-lists it while it had at most this many entries
# (a few LIST pages); larger directories are asked one name at a time.
RELIST_MAX_ENTRIES = 3000
# Remembered names of skipped keys (each is logged once); bounded so odd buckets cannot grow it.
MAX_SKIPPED_KEYS_REMEMBERED = 10_000


def is_valid_name(name: str) -> bool:
    """Whether a key's last component can be a directory entry's name."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and len(os.fsencode(name)) <= NAME_MAX
    )


class _Offline(Exception):
    """S3 did not answer a revalidation (unreachable, throttled or too slow): serve the cache."""


class _NoKnowledge(Exception):
    """The cache knows nothing about a path: only S3 can answer."""


@dataclass(frozen=True)
class Node:
    path: str
    size: int
    attrs: ObjectAttrs
    # False when the attributes are guesses from a listing (no HEAD yet): not to be cached long.
    exact: bool = True

    @property
    def is_dir(self) -> bool:
        return self.attrs.is_dir


def split_path(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent, name


def join_path(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class Namespace:
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
        self.skipped_keys = 0  # keys left out of listings because they cannot be file names
        self._skipped_logged: set[str] = set()
        # Requests in flight, so that concurrent askers of the same key or directory share one.
        self._heads_in_flight: dict[str, trio.Event] = {}
        self._listings_in_flight: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self.markers = DirMarkers(store, meta, key_for, self.head)

    def bind_nursery(self, nursery: trio.Nursery) -> None:
        """Where HEAD prefetches run; without one, nothing is fetched ahead."""
        self._nursery = nursery

    def dir_key(self, path: str) -> str:
        return self.key_for(path) + "/" if path else self.root_key

    def path_of_key(self, key: str) -> str:
        return key[len(self.root_key) :].rstrip("/") if self.root_key else key.rstrip("/")

    # -- reading the tree -----------------------------------------------------------------------

    async def listing(self, dir_path: str, fresh: bool = False) -> dict[str, DirEntry]:
        """Names in a directory: the S3 listing (cached for the TTL) plus local files not yet
        uploaded."""
        listing = await self._s3_listing(dir_path, fresh)
        merged = dict(listing.entries)
        for f in self.cache.children_of(dir_path):
            # A clean file validated (uploaded or HEAD'ed) before the LIST began is in it unless
            # someone deleted it since; newer ones may have raced the LIST, so they are added.
            if not f.dirty and f.validated_at < listing.fetched_at:
                continue
            name = split_path(f.path)[1]
            merged[name] = DirEntry(name, False, f.size, f.attrs.mtime)
        return merged

    async def _s3_listing(self, dir_path: str, fresh: bool = False) -> Listing:
        if fresh:
            return await self._list_from_s3(dir_path)
        listing = self.meta.listing(dir_path)
        if listing is not None:
            return listing
        stale = self.meta.stale_listing(dir_path)
        if stale is None:
            return await self._shared_list(dir_path)
        if self.store.unreachable:
            return stale
        # No deadline here (a LIST of a large directory may rightly take long): a failure after
        # the retry budget, or the store already known unreachable, serves the last listing.
        try:
            return await self._shared_list(dir_path)
        except (StoreUnavailable, Throttled) as err:
            log.info("listing %r from the cache: S3 unreachable (%s: %s)", dir_path, type(err).__name__, err)
            return stale

    async def _shared_list(self, dir_path: str) -> Listing:
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
        self.meta.put_listing(dir_path, listing)
        return listing

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

    def _prefetch_heads(self, dir_path: str, listing: Listing, name: str) -> None:
        """Starts HEADs of the listed entries from `name` on whose attributes are not known."""
        if self._nursery is None:
            return
        for other in listing.names_from(name, HEAD_PREFETCH_WINDOW):
            entry = listing.entries.get(other)
            path = join_path(dir_path, other)
            if entry is None or self.cache.get(path) is not None:
                continue
            keys = [self.dir_key(path)] if entry.is_dir else [self.key_for(path)]
            if entry.folder:
                keys.append(self.markers.folder_key(path))
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
            # with the metadata we gave it.
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
        if listing is None:
            listing = await self._relisted_if_small(parent)
        if listing is not None:
            # A fresh listing answers negative lookups without a request, and vouches for a HEAD
            # of the same object fetched earlier.
            entry = listing.entries.get(name)
            if entry is None:
                return None
            key = self.dir_key(path) if entry.is_dir else self.key_for(path)
            confirmed = None if entry.is_dir else self.meta.head_confirmed_by(key, entry)
            if confirmed is not None:
                return self._file_node(path, confirmed)
            if key not in self._heads_in_flight and not self.meta.head(key)[0]:
                self._prefetch_heads(parent, listing, name)
            if entry.is_dir:
                return await self._dir_node(path, entry.folder)
        # Otherwise one HEAD per name, as s3fs does: re-listing a directory of 10,000 entries
        # for each lookup once the TTL passed would be far slower.
        info = await self.head(self.key_for(path))
        if info is not None:
            return self._file_node(path, info)
        if listing is None and await self._has_children(path):
            return await self._dir_node(path)
        return None

    def _file_node(self, path: str, info: ObjectInfo) -> Node:
        return Node(path, info.size, attrs_from_metadata(info.metadata, info.last_modified, self.defaults))

    async def _relisted_if_small(self, dir_path: str) -> Listing | None:
        """A new listing of a directory last seen with few entries; None for a large or never
        listed one (the caller asks S3 about the one name)."""
        stale = self.meta.stale_listing(dir_path)
        if stale is None or len(stale.entries) > RELIST_MAX_ENTRIES:
            return None
        return await self._shared_list(dir_path)

    async def _has_children(self, path: str) -> bool:
        known, marker = self.meta.head(self.dir_key(path))
        if known and marker is not None:
            return True
        page = await self.store.list_first_page(self.dir_key(path), "/")
        return page is not None and bool(page.objects or page.prefixes)

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
        return await self.store.get_range(self.key_for(path), 0, info.size)

    # -- changing the tree ----------------------------------------------------------------------

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

    async def mkdir(self, path: str, attrs: ObjectAttrs) -> Node:
        await self.markers.write(path, attrs)
        parent, name = split_path(path)
        self.meta.add_entry(parent, DirEntry(name, True, folder=self.markers.uses_companions))
        self.meta.put_listing(path, Listing({}))
        return Node(path, 0, attrs)

    async def is_empty_dir(self, path: str) -> bool:
        return not await self.listing(path, fresh=True)

    async def rmdir(self, path: str) -> None:
        if not await self.is_empty_dir(path):
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        await self.markers.remove(path)
        self.note_gone(path)
        self.meta.forget_listing(path)

    async def unlink(self, path: str) -> None:
        f = self.cache.get(path)
        if f is not None:
            async with f.upload_lock:  # an upload in flight must not recreate the object
                self.cache.forget(f)
        await self.store.delete(self.key_for(path))
        self.note_gone(path)

    async def symlink(self, path: str, target: bytes, attrs: ObjectAttrs) -> Node:
        """A symlink, or (empty `target`) a special file: a small object typed by its mode."""
        info = await self.store.put_bytes(self.key_for(path), target, metadata_from_attrs(attrs))
        self.note_file(path, len(target), attrs.mtime)
        self.meta.put_head(info.key, info, s3_time=False)
        return Node(path, len(target), attrs)

    async def set_object_attrs(self, node: Node, attrs: ObjectAttrs) -> None:
        """chmod/chown/utimens of something not dirty in the cache: rewrite the object's metadata
        in place (copy onto itself); for a directory, (re)write its marker."""
        if node.is_dir:
            await self.markers.write(node.path, attrs)
            return
        info = await self.store.copy(self.key_for(node.path), self.key_for(node.path), metadata_from_attrs(attrs))
        f = self.cache.get(node.path)
        if f is not None and not f.dirty:
            f.base_etag = info.etag
            f.attrs = attrs
        self.meta.put_head(info.key, info, s3_time=False)

    async def rename(self, old: str, new: str) -> None:
        src = await self.stat(old)
        if src is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        dst = await self.stat(new)
        moved = src.attrs.changed(time.time())  # a rename changes the moved inode's ctime
        if src.is_dir:
            if new.startswith(old + "/"):
                raise pyfuse3.FUSEError(errno.EINVAL)
            if dst is not None and not dst.is_dir:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if dst is not None:
                await self.rmdir(new)
            await self._rename_dir(old, new, moved)
        else:
            if dst is not None and dst.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            await self._rename_file(old, new, moved)

    async def _rename_file(self, old: str, new: str, attrs: ObjectAttrs | None = None) -> None:
        """Moves a file; `attrs` (the renamed file's, new ctime) replace its metadata, None keeps it
        (files below a renamed directory keep their ctime, as in POSIX)."""
        replaced = self.cache.get(new)
        if replaced is not None:
            async with replaced.upload_lock:
                self.cache.forget(replaced)
        new_key = self.key_for(new)
        f = self.cache.get(old)
        metadata = None if attrs is None else metadata_from_attrs(attrs)
        if f is None:
            await self.store.copy(self.key_for(old), new_key, metadata)
            await self.store.delete(self.key_for(old))
        else:
            # Waits for an upload in flight; the object moves with its last uploaded content and
            # the dirty local version follows under the new name (never a half file in S3).
            async with f.upload_lock:
                if attrs is not None:
                    # Kept in the dirty state too: the next upload (or journal replay) carries it.
                    f.attrs = f.attrs.replace(ctime=attrs.change_time) if f.dirty else attrs
                if f.base_key is not None:
                    info = await self.store.copy(f.base_key, new_key, None if f.dirty else metadata)
                    await self.store.delete(f.base_key)
                    f.base_key, f.base_etag = new_key, info.etag
                elif replaced is None and await self.head(new_key) is not None:
                    # The new name's old object would show through until our upload: remove it.
                    await self.store.delete(new_key)
                self.cache.move(f, new)
        self.note_gone(old)
        node = await self.stat(new) if f is None else self.node_of_cached(f)
        self.note_file(new, node.size if node else 0, time.time())

    async def _rename_dir(self, old: str, new: str, attrs: ObjectAttrs) -> None:
        old_dkey = self.dir_key(old)
        keys: list[str] = []
        for page in await self.store.list_all(old_dkey, None):
            keys.extend(obj.key for obj in page.objects)
        moved: set[str] = set()
        for key in keys:
            if key == old_dkey:
                continue
            path = self.path_of_key(key)
            target = new + path[len(old) :]
            if key.endswith("/"):
                await self._move_marker(key, self.dir_key(target))
            elif folder_base_name(split_path(path)[1]) is not None:
                # A subdirectory's attributes (DirMarkers' companion): moved as they are.
                await self.store.copy(key, self.key_for(target))
                await self.store.delete(key)
            else:
                await self._rename_file(path, target)
                moved.add(path)
        for f in self.cache.files_under(old):
            if f.path not in moved:
                await self._rename_file(f.path, new + f.path[len(old) :])
        # The directory itself: its attributes (new ctime) at the new name, then the old marker
        # and companion go (an implicit directory gets a marker with the mount's defaults).
        await self.markers.write(new, attrs)
        await self.markers.remove(old)
        self.meta.forget_all()

    async def _move_marker(self, old_key: str, new_key: str) -> None:
        # Re-put rather than copy: some servers (SeaweedFS) refuse CopyObject of a "dir/" key.
        info = await self.store.head(old_key)
        await self.store.put_bytes(new_key, b"", info.metadata)
        await self.store.delete(old_key)
