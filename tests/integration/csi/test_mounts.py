"""Bind mounts of the mounter module on real directories: read-only binds refuse writes, and
unmount removes every stacked layer."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from razorfs.csi import mounts
from tests.realparts.fusemount import force_unmount


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    source, target = tmp_path / "source", tmp_path / "a dir" / "target"  # a space: mountinfo escapes it
    source.mkdir()
    (source / "file").write_text("content")
    try:
        yield source, target
    finally:
        force_unmount(target)


def test_bind_shows_the_source_and_read_only_bind_refuses_writes(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    asyncio.run(mounts.make_target(target))
    asyncio.run(mounts.bind(source, target, read_only=True))
    assert mounts.is_mounted(target) and not asyncio.run(mounts.is_dead(target))
    assert (target / "file").read_text() == "content"
    with pytest.raises(OSError) as info:
        (target / "new").write_text("x")
    assert info.value.errno == errno.EROFS
    asyncio.run(mounts.unmount(target))
    assert not mounts.is_mounted(target)


def test_unmount_removes_stacked_binds_and_remove_target_deletes_the_dir(dirs: tuple[Path, Path]) -> None:
    source, target = dirs
    asyncio.run(mounts.make_target(target))
    for _ in range(3):
        asyncio.run(mounts.bind(source, target, read_only=False))
    assert mounts.mount_count(target) == 3
    asyncio.run(mounts.unmount(target))
    assert mounts.mount_count(target) == 0
    asyncio.run(mounts.remove_target(target))
    assert not target.exists()
    asyncio.run(mounts.remove_target(target))  # idempotent
