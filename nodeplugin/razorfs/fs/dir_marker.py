"""`DirMarkers`: where a directory's mode, owner and times live in S3. As s3fs writes them: on
the zero-byte `<path>/` marker object, in `x-amz-meta-*` headers.

Some servers keep no user metadata on keys ending in "/" (SeaweedFS turns such a key into a
filer directory and drops the headers). The first marker written on a mount is read back once to
find out; where the headers were dropped, each marker gets a companion `<path>_$folder$` object
(the old s3fs / Hadoop name for a directory marker, which s3fs and S3A hide from listings)
carrying the same headers. Reading prefers the marker's own headers, then the companion's, then
the mount's defaults (an implicit directory: objects below it, no marker)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from razorfs.cache.metadata_cache import MetadataCache
from razorfs.cache.metered_store import MeteredStore
from razorfs.store.base import ObjectInfo
from razorfs.store.errors import ObjectNotFound
from razorfs.store.object_attrs import ObjectAttrs, has_attr_headers, metadata_from_attrs

log = logging.getLogger(__name__)

FOLDER_SUFFIX = "_$folder$"


def folder_base_name(name: str) -> str | None:
    """The directory name a `<name>_$folder$` companion stands for; None for other names."""
    return name[: -len(FOLDER_SUFFIX)] if name.endswith(FOLDER_SUFFIX) else None


class DirMarkers:
    def __init__(
        self,
        store: MeteredStore,
        meta: MetadataCache,
        key_for: Callable[[str], str],
        head: Callable[[str], Awaitable[ObjectInfo | None]],
    ) -> None:
        self.store = store
        self.meta = meta
        self.key_for = key_for
        self.root_key = key_for("")
        self._head = head  # the namespace's cached, shared HEAD
        # Whether the server keeps user metadata on "<path>/" keys: None until the first write.
        self.marker_keeps_metadata: bool | None = None

    def marker_key(self, path: str) -> str:
        return self.key_for(path) + "/" if path else self.root_key

    def folder_key(self, path: str) -> str:
        return self.key_for(path) + FOLDER_SUFFIX if path else self.root_key + FOLDER_SUFFIX

    async def write(self, path: str, attrs: ObjectAttrs) -> None:
        """Stores a directory's attributes (mkdir, chmod, chown, utimens, rename); creates the
        marker of an implicit directory."""
        metadata = metadata_from_attrs(attrs)
        marker_key = self.marker_key(path)
        if marker_key:  # a volume at the bucket root has no marker for its root
            info = await self.store.put_bytes(marker_key, b"", metadata)
            if self.marker_keeps_metadata is None:
                await self._probe_marker_metadata(marker_key)
            if self.marker_keeps_metadata:
                self.meta.put_head(marker_key, info, s3_time=False)
                return
            self.meta.forget_head(marker_key)  # what the server kept is not what we sent
        folder = await self.store.put_bytes(self.folder_key(path), b"", metadata)
        self.meta.put_head(folder.key, folder, s3_time=False)
        # A listing of the parent from before must not answer "no companion" from now on.
        parent, _, name = path.rpartition("/")
        listing = self.meta.stale_listing(parent) if path else None
        entry = listing.entries.get(name) if listing is not None else None
        if entry is not None:
            entry.folder = True

    @property
    def uses_companions(self) -> bool:
        """Whether directories made now get a companion (the server drops marker metadata)."""
        return self.marker_keeps_metadata is False

    async def _probe_marker_metadata(self, marker_key: str) -> None:
        try:
            kept = has_attr_headers((await self.store.head(marker_key)).metadata)
        except ObjectNotFound:
            kept = False  # a server that does not even keep the marker: companions are harmless
        self.marker_keeps_metadata = kept
        if not kept:
            log.info(
                "the S3 server keeps no metadata on directory markers: directory attributes go in %s objects",
                FOLDER_SUFFIX,
            )

    async def attrs_source(self, path: str, marker: ObjectInfo | None, folder_listed: bool | None) -> ObjectInfo | None:
        """The object whose headers describe the directory: its marker when the marker has them,
        else its companion. The companion is HEADed only when a listing showed it, or when nothing
        is known and a marker without headers exists (never for an implicit directory: a
        companion is only ever written next to a marker)."""
        if marker is not None and has_attr_headers(marker.metadata):
            return marker
        if folder_listed is False or (folder_listed is None and marker is None):
            return marker
        folder = await self._head(self.folder_key(path))
        return folder if folder is not None else marker

    def cached_attrs_source(self, path: str, marker: ObjectInfo | None, stale: bool) -> tuple[bool, ObjectInfo | None]:
        """Like `attrs_source` from the metadata cache only: (known, source)."""
        if marker is not None and has_attr_headers(marker.metadata):
            return True, marker
        known, folder = (self.meta.stale_head if stale else self.meta.head)(self.folder_key(path))
        if not known:
            return False, marker
        return True, folder if folder is not None else marker

    async def remove(self, path: str) -> None:
        """rmdir: the marker and any companion, in one request."""
        keys = [k for k in (self.marker_key(path), self.folder_key(path)) if k]
        await self.store.delete_many(keys)
        for key in keys:
            self.meta.forget_head(key)
