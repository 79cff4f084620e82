"""`RazorOperations`: the pyfuse3 request handlers. They turn inodes into paths, ask the namespace
and the file cache, and hold the durability promises: close() returns once the data is fsync'd
locally and journaled (writethrough: once it is in S3), fsync() once the content is in S3.
Hard links are refused with EPERM (what link(2) returns on filesystems without hard links).

Permission checks are the kernel's: the mount uses `default_permissions`, so the kernel checks
mode bits, groups, sticky directories and who may chown or chmod before a request gets here;
what this layer owes it is true attributes (ctime on every change, a setgid directory's group
passed on to what is made in it). atime is stored when set (utimensat) but never moved by reads,
like the `noatime` most object-store filesystems use: a read must not cost an S3 write.

Somewhat over 450 lines on purpose: it is pyfuse3's operation table, one short handler per FUSE
request, each translating errors once (`errno_boundary`); the work lives in the namespace and the
cache."""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pyfuse3

from razorfs.cache.cached_file import CachedFile
from razorfs.cache.file_cache import FileCache
from razorfs.cache.readahead import ReadAhead
from razorfs.cache.uploader import Uploader
from razorfs.fs.dir_marker import folder_base_name
from razorfs.fs.errno_map import errno_boundary
from razorfs.fs.inode_table import InodeTable
from razorfs.fs.namespace import Namespace
from razorfs.fs.node import Node, join_path, split_path
from razorfs.store.object_attrs import SPECIAL_FILE_TYPES, ObjectAttrs

log = logging.getLogger(__name__)

CACHE_MODES = ("writeback", "writethrough", "readonly")
BLOCK_SIZE_BYTES = 128 * 1024
STATFS_BLOCKS = 2**40 // 4096  # S3 has no capacity: report 1 PiB free
STATFS_FILES = 2**32
DEFAULT_FSYNC_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class FsOptions:
    cache_mode: str = "writeback"
    metadata_ttl_s: float = 1.0
    # fsync() returns EIO once it waited this long for its upload while the uploads kept failing
    # (the data stays dirty and is uploaded later); None: wait as long as it takes.
    fsync_timeout_s: float | None = DEFAULT_FSYNC_TIMEOUT_S

    @property
    def read_only(self) -> bool:
        return self.cache_mode == "readonly"


@dataclass
class OpenFile:
    file: CachedFile
    writable: bool
    readahead: ReadAhead = field(default_factory=ReadAhead)
    inode: int = 0


def page_cache_token(f: CachedFile) -> tuple[int, str | None, int]:
    """What the kernel's cached pages of a file were read from: the local file, its S3 base and
    its content version. Equal tokens at release and the next open mean the pages are still right."""
    return (f.file_id, f.base_etag, f.version)


class RazorOperations(pyfuse3.Operations):  # type: ignore[misc]
    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(
        self,
        namespace: Namespace,
        cache: FileCache,
        uploader: Uploader,
        options: FsOptions,
        on_init: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.on_init = on_init
        self.ns = namespace
        self.cache = cache
        self.uploader = uploader
        self.options = options
        self.inodes = InodeTable()
        self._handles: dict[int, OpenFile] = {}
        # inode -> page_cache_token of the file when its last handle was released.
        self._page_cache_tokens: dict[int, tuple[int, str | None, int]] = {}
        self._dir_handles: dict[int, list[tuple[str, Node]]] = {}
        self._next_fh = itertools.count(1)

    def init(self) -> None:
        # pyfuse3 calls this on the loop when FUSE's INIT arrives, and sends the reply (which sets
        # the connection's parameters in the kernel) as soon as it returns, before the loop runs
        # anything else: a task `on_init` starts sees the mount initialized.
        if self.on_init is not None:
            self.on_init()

    # -- helpers ----------------------------------------------------------------------------------

    def _path(self, inode: int) -> str:
        path = self.inodes.path(inode)
        if path is None:
            raise pyfuse3.FUSEError(errno.ESTALE)
        return path

    def _child(self, parent_inode: int, name: bytes) -> str:
        decoded = os.fsdecode(name)
        if len(name) > 255:
            raise pyfuse3.FUSEError(errno.ENAMETOOLONG)
        return join_path(self._path(parent_inode), decoded)

    def _new_child(self, parent_inode: int, name: bytes) -> str:
        """The path of an entry to be made: a name ending in `_$folder$` would be taken for a
        directory's attribute object (fs.dir_marker) and vanish from listings, so it is refused."""
        path = self._child(parent_inode, name)
        if folder_base_name(os.fsdecode(name)) is not None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return path

    async def _node(self, path: str) -> Node:
        node = await self.ns.stat(path)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _entry(self, node: Node) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = self.inodes.inode(node.path)
        entry.generation = 0
        timeout = self.options.metadata_ttl_s if node.exact else 0
        entry.entry_timeout = timeout
        entry.attr_timeout = timeout
        entry.st_mode = node.attrs.mode
        entry.st_nlink = 2 if node.is_dir else 1
        entry.st_uid = node.attrs.uid
        entry.st_gid = node.attrs.gid
        entry.st_rdev = node.attrs.rdev
        entry.st_size = node.size
        entry.st_blksize = BLOCK_SIZE_BYTES
        entry.st_blocks = (node.size + 511) // 512
        entry.st_mtime_ns = int(node.attrs.mtime * 1e9)
        entry.st_atime_ns = int(node.attrs.access_time * 1e9)
        entry.st_ctime_ns = int(node.attrs.change_time * 1e9)
        return entry

    async def _new_attrs(self, parent: str, kind: int, mode: int, ctx: pyfuse3.RequestContext) -> ObjectAttrs:
        """Attributes of a new entry made by `ctx` in `parent`: in a setgid directory it takes the
        directory's group, and a new directory keeps the setgid bit (what ext4 does)."""
        perm = stat.S_IMODE(mode) & ~ctx.umask
        gid = ctx.gid
        parent_attrs = (await self._node(parent)).attrs
        if parent_attrs.mode & stat.S_ISGID:
            gid = parent_attrs.gid
            if kind == stat.S_IFDIR:
                perm |= stat.S_ISGID
        now = time.time()
        return ObjectAttrs(kind | perm, ctx.uid, gid, now, now, now)

    def _refuse_if_read_only(self) -> None:
        if self.options.read_only:
            raise pyfuse3.FUSEError(errno.EROFS)

    async def _commit(self, f: CachedFile) -> None:
        await self.cache.commit(f)
        await self.cache.wait_power_safe(f)
        if self.options.cache_mode == "writethrough":
            await self.uploader.wait_uploaded(f)

    async def _cached_file(self, path: str, node: Node) -> CachedFile:
        f = self.cache.get(path)
        if f is not None:
            if self.cache.needs_revalidation(f) and await self.ns.revalidated(f) is None:
                raise pyfuse3.FUSEError(errno.ENOENT)  # deleted by another client since we cached it
            return f
        info = await self.ns.head(self.ns.key_for(path))
        if info is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.cache.open_object(path, info, node.attrs)

    # -- attributes -------------------------------------------------------------------------------

    @errno_boundary
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if folder_base_name(os.fsdecode(name)) is not None:
            raise pyfuse3.FUSEError(errno.ENOENT)  # a directory's attributes, never an entry
        return self._entry(await self._node(self._child(parent_inode, name)))

    @errno_boundary
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(await self._node(self._path(inode)))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # Paths keep their inode numbers for the life of the mount.
        return None

    @errno_boundary
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        self._refuse_if_read_only()
        path = self._path(inode)
        node = await self._node(path)
        attrs = attrs_after_setattr(node.attrs, attr, fields, time.time())
        if fields.update_size:
            if node.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            if fh is not None and fh in self._handles:
                f = self._handles[fh].file
            else:
                f = await self._cached_file(path, node)
            await self.cache.truncate(f, attr.st_size)
            self.cache.set_attrs(f, attrs)
            if fh is None:
                await self._commit(f)  # truncate(2) has no close() to wait for
        elif attrs != node.attrs:
            cached = self.cache.get(path)
            if cached is not None and cached.dirty:
                self.cache.set_attrs(cached, attrs)
                if cached.open_handles == 0:
                    await self._commit(cached)
            else:
                await self.ns.set_object_attrs(node, attrs)
        return self._entry(await self._node(path))

    # -- files ------------------------------------------------------------------------------------

    @errno_boundary
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        path = self._path(inode)
        node = await self._node(path)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        writable = (flags & os.O_ACCMODE) != os.O_RDONLY
        if writable:
            self._refuse_if_read_only()
        f = await self._cached_file(path, node)
        if writable and flags & os.O_TRUNC and f.size:
            await self.cache.truncate(f, 0)
            now = time.time()
            self.cache.set_attrs(f, f.attrs.changed(now, mtime=now))
        # Warm re-reads are served by the kernel's page cache unless the file changed (here or in
        # S3, as found by revalidation above) since the pages were filled.
        keep_cache = self._page_cache_tokens.get(inode) == page_cache_token(f)
        if keep_cache:
            self.cache.counters.opens_keeping_pages += 1
        else:
            self.cache.counters.opens_dropping_pages += 1
        return self._open_handle(f, writable, inode, keep_cache)

    def _open_handle(self, f: CachedFile, writable: bool, inode: int, keep_cache: bool = False) -> pyfuse3.FileInfo:
        fh = next(self._next_fh)
        self._handles[fh] = OpenFile(f, writable, inode=inode)
        f.open_handles += 1
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep_cache)

    @errno_boundary
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._refuse_if_read_only()
        path = self._new_child(parent_inode, name)
        existing = self.cache.get(path)
        if existing is not None:
            async with existing.upload_lock:
                self.cache.forget(existing)
        attrs = await self._new_attrs(split_path(path)[0], stat.S_IFREG, mode, ctx)
        f = self.cache.create(path, attrs)
        self.ns.note_file(path, 0, attrs.mtime)
        entry = self._entry(self.ns.node_of_cached(f))
        return self._open_handle(f, True, entry.st_ino), entry

    @errno_boundary
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._handles[fh]
        return await self.cache.read(handle.file, off, size, handle.readahead)

    @errno_boundary
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self._refuse_if_read_only()
        handle = self._handles[fh]
        written = await self.cache.write(handle.file, off, buf)
        now = time.time()
        handle.file.attrs = handle.file.attrs.changed(now, mtime=now)
        return written

    @errno_boundary
    async def flush(self, fh: int) -> None:
        handle = self._handles[fh]
        if handle.writable or handle.file.dirty:
            await self._commit(handle.file)

    @errno_boundary
    async def release(self, fh: int) -> None:
        handle = self._handles.pop(fh)
        f = handle.file
        f.open_handles -= 1
        self._page_cache_tokens.pop(handle.inode, None)
        if f.deleted:
            if f.open_handles == 0:
                f.data_path.unlink(missing_ok=True)
            return
        if handle.writable:
            await self._commit(f)
        self._page_cache_tokens[handle.inode] = page_cache_token(f)

    @errno_boundary
    async def fsync(self, fh: int, datasync: bool) -> None:
        f = self._handles[fh].file
        await self.cache.commit(f)
        await self.uploader.wait_uploaded(f, self.options.fsync_timeout_s)

    # -- directories ------------------------------------------------------------------------------

    @errno_boundary
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        path = self._path(inode)
        node = await self._node(path)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        entries = await self.ns.listing(path)
        fh = next(self._next_fh)
        # "." and ".." come from us (FUSE adds neither; keys named so are never listed). Marked
        # inexact (no attribute caching): they must not refresh what the kernel caches.
        here = Node(path, 0, node.attrs, exact=False)
        parent = Node(split_path(path)[0], 0, node.attrs, exact=False) if path else here
        self._dir_handles[fh] = [(".", here), ("..", parent)] + [
            (name, self.ns.listed_node(path, entry)) for name, entry in sorted(entries.items())
        ]
        return fh

    @errno_boundary
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        entries = self._dir_handles[fh]
        for index in range(start_id, len(entries)):
            name, node = entries[index]
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self._entry(node), index + 1):
                return

    async def releasedir(self, fh: int) -> None:
        self._dir_handles.pop(fh, None)

    @errno_boundary
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_if_read_only()
        path = self._new_child(parent_inode, name)
        if await self.ns.stat(path) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        attrs = await self._new_attrs(split_path(path)[0], stat.S_IFDIR, mode, ctx)
        return self._entry(await self.ns.mkdir(path, attrs))

    @errno_boundary
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._refuse_if_read_only()
        path = self._child(parent_inode, name)
        node = await self._node(path)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        await self.ns.rmdir(path)
        self.inodes.forget_path(path)

    @errno_boundary
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._refuse_if_read_only()
        path = self._child(parent_inode, name)
        node = await self._node(path)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        await self.ns.unlink(path)
        self.inodes.forget_path(path)

    @errno_boundary
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._refuse_if_read_only()
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old = self._child(parent_inode_old, name_old)
        new = self._new_child(parent_inode_new, name_new)
        if old == new:
            return
        if flags & pyfuse3.RENAME_NOREPLACE and await self.ns.stat(new) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        await self.ns.rename(old, new)
        self.inodes.move(old, new)

    # -- links ------------------------------------------------------------------------------------

    @errno_boundary
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._refuse_if_read_only()
        path = self._new_child(parent_inode, name)
        if await self.ns.stat(path) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        attrs = await self._new_attrs(split_path(path)[0], stat.S_IFLNK, 0o777, ctx)
        attrs = attrs.replace(mode=stat.S_IFLNK | 0o777)  # a symlink's mode is always 0777
        return self._entry(await self.ns.symlink(path, target, attrs))

    @errno_boundary
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        """FIFOs, sockets and device nodes as s3fs stores them: an empty object typed by its
        mode (the kernel serves their I/O; opening a device needs a mount without `nodev`)."""
        self._refuse_if_read_only()
        path = self._new_child(parent_inode, name)
        if await self.ns.stat(path) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        kind = stat.S_IFMT(mode)
        attrs = await self._new_attrs(split_path(path)[0], kind, mode, ctx)
        if kind == stat.S_IFREG:
            f = self.cache.create(path, attrs)
            self.ns.note_file(path, 0, attrs.mtime)
            await self._commit(f)
            return self._entry(self.ns.node_of_cached(f))
        if kind not in SPECIAL_FILE_TYPES:
            raise pyfuse3.FUSEError(errno.EINVAL)
        device = rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
        return self._entry(await self.ns.symlink(path, b"", attrs.replace(rdev=device)))

    @errno_boundary
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return await self.ns.readlink(self._path(inode))

    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_blocks = data.f_bfree = data.f_bavail = STATFS_BLOCKS
        data.f_files = data.f_ffree = data.f_favail = STATFS_FILES
        data.f_namemax = 255
        return data


def attrs_after_setattr(
    attrs: ObjectAttrs, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, now: float
) -> ObjectAttrs:
    """What chmod, chown, utimensat and truncate make of a node's attributes: any of them also
    sets the ctime (to `now`, or to what the kernel sends), a size change the mtime."""
    changes: dict[str, float] = {}
    if fields.update_mode:
        changes["mode"] = stat.S_IFMT(attrs.mode) | stat.S_IMODE(attr.st_mode)
    if fields.update_uid:
        changes["uid"] = attr.st_uid
    if fields.update_gid:
        changes["gid"] = attr.st_gid
    if fields.update_atime:
        changes["atime"] = attr.st_atime_ns / 1e9
    if fields.update_mtime:
        changes["mtime"] = attr.st_mtime_ns / 1e9
    elif fields.update_size:
        changes["mtime"] = now
    if not changes and not fields.update_size:
        return attrs
    ctime = attr.st_ctime_ns / 1e9 if fields.update_ctime else now
    return attrs.replace(ctime=ctime, **changes)
