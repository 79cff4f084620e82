"""`Node`: what a path of the volume is (file, directory, symlink) with its size and attributes,
as the namespace answers it; plus the path arithmetic and the rule for which names can exist."""

from __future__ import annotations

import os
from dataclasses import dataclass

from razorfs.store.object_attrs import ObjectAttrs

NAME_MAX = 255


def is_valid_name(name: str) -> bool:
    """Whether a key's last component can be a directory entry's name."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and len(os.fsencode(name)) <= NAME_MAX
    )


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
