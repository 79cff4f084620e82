"""The same script of file operations gives the same observable results on a local directory and
on a RazorFS mount: rename, truncate, append, overwrite in the middle, symlink, chmod/chown,
mkdir/rmdir and readdir of 10,000 entries. Hard links fail with EPERM."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.fs.conftest import MountFactory

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

MANY_ENTRIES = 10_000
SOAK = os.environ.get("RAZORFS_SOAK") == "1"


def _observe(root: Path) -> list[str]:
    """Everything a program could see of the tree: names, types, modes, owners, sizes, content."""
    seen: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            line = f"{rel_dir}/{name} {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
            if stat.S_ISLNK(st.st_mode):
                line += f" -> {os.readlink(path)}"
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    line += f" {st.st_size} {hashlib.sha256(f.read()).hexdigest()[:16]}"
            seen.append(line)
    return seen


def _errno_of(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as err:
        return errno.errorcode[err.errno or 0]
    return "ok"


def _script(root: Path) -> list[str]:
    log: list[str] = []
    (root / "dir").mkdir()
    (root / "dir" / "a.txt").write_bytes(b"hello world")
    with open(root / "dir" / "a.txt", "ab") as f:  # append
        f.write(b", appended")
    with open(root / "dir" / "a.txt", "r+b") as f:  # overwrite in the middle
        f.seek(6)
        f.write(b"WORLD")
    log.append(f"a: {(root / 'dir' / 'a.txt').read_bytes()!r}")
    data = bytes(range(256)) * 4096
    (root / "dir" / "b.bin").write_bytes(data)
    os.truncate(root / "dir" / "b.bin", 1000)  # shrink
    with open(root / "dir" / "b.bin", "r+b") as f:
        f.truncate(5000)  # extend: zeros
        f.seek(4000)
        f.write(b"tail")
    log.append(f"b: {hashlib.sha256((root / 'dir' / 'b.bin').read_bytes()).hexdigest()}")
    os.rename(root / "dir" / "a.txt", root / "dir" / "renamed.txt")  # plain rename
    (root / "dir" / "victim").write_bytes(b"to be replaced")
    os.rename(root / "dir" / "renamed.txt", root / "dir" / "victim")  # rename over a file
    log.append(f"exists after rename: {(root / 'dir' / 'renamed.txt').exists()}")
    os.symlink("victim", root / "dir" / "link")
    log.append(f"readlink: {os.readlink(root / 'dir' / 'link')}")
    log.append(f"through link: {(root / 'dir' / 'link').read_bytes()!r}")
    os.chmod(root / "dir" / "victim", 0o600)
    os.chown(root / "dir" / "victim", 1234, 5678)
    # Default mode: SeaweedFS drops user metadata on "dir/" markers, so a directory chmod does
    # not survive there (it does on AWS S3 and MinIO).
    (root / "dir" / "sub").mkdir()
    (root / "dir" / "sub" / "deep").write_bytes(b"deep")
    log.append(f"rmdir non-empty: {_errno_of(lambda: (root / 'dir' / 'sub').rmdir())}")
    log.append(f"rmdir file: {_errno_of(lambda: os.rmdir(root / 'dir' / 'victim'))}")
    log.append(f"unlink dir: {_errno_of(lambda: os.unlink(root / 'dir' / 'sub'))}")
    log.append(f"mkdir existing: {_errno_of(lambda: (root / 'dir' / 'sub').mkdir())}")
    log.append(f"open missing: {_errno_of(lambda: (root / 'dir' / 'nope').read_bytes())}")
    os.rename(root / "dir" / "sub", root / "dir" / "moved")  # directory rename
    (root / "empty").mkdir()
    (root / "empty").rmdir()
    os.unlink(root / "dir" / "b.bin")
    log.append(f"listing: {sorted(os.listdir(root / 'dir'))}")
    return log


def test_operations_match_a_local_directory(razorfs_mount: MountFactory, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    vol = razorfs_mount()
    expected = _script(local)
    got = _script(vol.mountpoint)
    assert got == expected
    assert _observe(vol.mountpoint) == _observe(local)
    vol.umount()
    # Everything above is in S3: a fresh mount with an empty cache sees the same tree.
    again = razorfs_mount(cache_dir=tmp_path / "fresh")
    assert _observe(again.mountpoint) == _observe(local)


def test_readdir_of_10000_entries_matches_a_local_directory(
    razorfs_mount: MountFactory, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    (local / "many").mkdir(parents=True)
    names = [f"f{i:05d}" for i in range(MANY_ENTRIES)]
    for name in names:
        (local / "many" / name).write_bytes(b"x" * (len(name) % 5))
    with ThreadPoolExecutor(16) as pool:  # put by another S3 client, without our metadata
        list(pool.map(lambda n: s3_client.put_object(Bucket=bucket, Key=f"vol/many/{n}", Body=b"x" * (len(n) % 5)),
                      names))
    vol = razorfs_mount()
    assert sorted(os.listdir(vol.mountpoint / "many")) == sorted(os.listdir(local / "many"))
    for root in (local, vol.mountpoint):  # mkdir and rmdir among the 10,000
        for i in range(0, MANY_ENTRIES, 100):
            (root / "many" / f"d{i:05d}").mkdir()
    assert sorted(os.listdir(vol.mountpoint / "many")) == sorted(os.listdir(local / "many"))
    for i in range(0, MANY_ENTRIES, 37):
        name = names[i]
        got, want = os.lstat(vol.mountpoint / "many" / name), os.lstat(local / "many" / name)
        assert (stat.filemode(got.st_mode), got.st_size) == (stat.filemode(want.st_mode), want.st_size), name
    for root in (local, vol.mountpoint):
        for i in range(0, MANY_ENTRIES, 200):
            (root / "many" / f"d{i:05d}").rmdir()
    assert sorted(os.listdir(vol.mountpoint / "many")) == sorted(os.listdir(local / "many"))


def test_entries_created_through_the_mount_list_like_a_local_directory(
    razorfs_mount: MountFactory, tmp_path: Path
) -> None:
    count = MANY_ENTRIES if SOAK else 1_000  # ~50 creates/s against SeaweedFS: 10,000 in the soak run
    local = tmp_path / "local"
    local.mkdir()
    vol = razorfs_mount()
    for root in (local, vol.mountpoint):
        (root / "made").mkdir()
        for i in range(count):
            if i % 100 == 0:
                (root / "made" / f"d{i:05d}").mkdir()
            else:
                with open(root / "made" / f"f{i:05d}", "wb") as f:
                    f.write(b"x" * (i % 7))
    assert sorted(os.listdir(vol.mountpoint / "made")) == sorted(os.listdir(local / "made"))
    vol.flush()
    again = razorfs_mount(cache_dir=tmp_path / "fresh")
    assert sorted(os.listdir(again.mountpoint / "made")) == sorted(os.listdir(local / "made"))
    for i in range(1, count, 97):
        name = f"f{i:05d}"
        assert (again.mountpoint / "made" / name).read_bytes() == (local / "made" / name).read_bytes()


def test_hard_link_fails_with_eperm(razorfs_mount: MountFactory) -> None:
    vol = razorfs_mount()
    (vol.mountpoint / "f").write_bytes(b"x")
    with pytest.raises(OSError) as err:
        os.link(vol.mountpoint / "f", vol.mountpoint / "g")
    assert err.value.errno == errno.EPERM
