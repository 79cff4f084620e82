"""`InodeTable`: inode numbers for paths, stable for the life of the mount (like s3fs, numbers
are not kept across mounts: objects have no inode). Renames move whole subtrees."""

from __future__ import annotations

import pyfuse3

ROOT_INODE = int(pyfuse3.ROOT_INODE)


class InodeTable:
    def __init__(self) -> None:
        self._path_of: dict[int, str] = {ROOT_INODE: ""}
        self._inode_of: dict[str, int] = {"": ROOT_INODE}
        self._next = ROOT_INODE + 1

    def path(self, inode: int) -> str | None:
        return self._path_of.get(inode)

    def inode(self, path: str) -> int:
        found = self._inode_of.get(path)
        if found is None:
            found = self._next
            self._next += 1
            self._inode_of[path] = found
            self._path_of[found] = path
        return found

    def forget_path(self, path: str) -> None:
        inode = self._inode_of.pop(path, None)
        if inode is not None and inode != ROOT_INODE:
            del self._path_of[inode]

    def move(self, old: str, new: str) -> None:
        """`old` and everything below it now live at `new`; whatever was at `new` is gone."""
        self.forget_path(new)
        moved = [(p, i) for p, i in self._inode_of.items() if p == old or p.startswith(old + "/")]
        for p, _ in moved:
            del self._inode_of[p]
        for p, i in moved:
            target = new + p[len(old) :]
            stale = self._inode_of.pop(target, None)
            if stale is not None:
                self._path_of.pop(stale, None)
            self._inode_of[target] = i
            self._path_of[i] = target
