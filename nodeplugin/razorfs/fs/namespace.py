"""`Namespace`: the volume's names, read side (`PathLookup`) plus the operations that change S3
directly: mkdir/rmdir (markers), unlink, symlink, metadata updates and rename. A file rename is a
server-side copy plus delete (for a cached file journaled first, in an order a kill at any step
converges from: `FileCache.move`); a directory rename moves every object below it one by one and is
therefore NOT atomic: a crash midway leaves some entries under the old name and some under the new
one, none lost."""

from __future__ import annotations

import contextlib
import errno
import time

import pyfuse3

from razorfs.cache.metadata_cache import DirEntry, Listing
from razorfs.fs.dir_marker import folder_base_name
from razorfs.fs.node import Node, split_path
from razorfs.fs.path_lookup import PathLookup
from razorfs.store.object_attrs import ObjectAttrs, metadata_from_attrs


class Namespace(PathLookup):
    # -- changing the tree ----------------------------------------------------------------------

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
        if f is None:
            await self.store.delete(self.key_for(path))
        else:
            # Under the lock an upload in flight cannot recreate the object. The object goes first:
            # a crash before the journal row goes leaves the acknowledged content (replayed), never
            # an older upload of it showing through.
            async with f.upload_lock:
                await self.store.delete(self.key_for(path))
                self.cache.forget(f)
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
            f.written_to_s3_at = time.time()
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
        (files below a renamed directory keep their ctime, as in POSIX). Crash-safe at every step:
        a kill leaves the file under the old name, the new one or both, each with its newest
        acknowledged content, and a file it replaced with its content until the move is journaled
        (docs/architecture.md, "Renames")."""
        replaced = self.cache.get(new)
        new_key = self.key_for(new)
        f = self.cache.get(old)
        metadata = None if attrs is None else metadata_from_attrs(attrs)
        async with contextlib.AsyncExitStack() as locks:
            # No upload in flight may land at either name meanwhile (the replaced file's would
            # overwrite the moved object, ours would land at the old key).
            for held in (replaced, f):
                if held is not None:
                    await locks.enter_async_context(held.upload_lock)
            if f is None:
                # The replaced file's row goes only once its name holds the moved object: a kill
                # before that still uploads its acknowledged content there.
                await self.store.copy(self.key_for(old), new_key, metadata)
                if replaced is not None:
                    self.cache.forget(replaced)
                await self.store.delete(self.key_for(old))
            else:
                if attrs is not None:
                    # Kept in the dirty state too: the next upload (or journal replay) carries it.
                    f.attrs = f.attrs.replace(ctime=attrs.change_time) if f.dirty else attrs
                # The new name's object (the replaced file's upload, or one not cached here) would
                # show through until our upload, and stay if the file moves on before it: removed
                # once the file is journaled under the new name.
                stale = f.base_key is None and (replaced is not None or await self.head(new_key) is not None)
                await self.cache.move(f, new, replaced, None if f.dirty else metadata)
                if stale:
                    await self.store.delete(new_key)
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
