"""Objects whose keys are not valid file names (`a//b`, `.`, `..`, `./z`, `q/../w`, components
longer than NAME_MAX, a key that is both a file and a prefix) are shown predictably, every name
the kernel gets is a valid one, and the daemon survives listing, stat'ing and reading all of it.

SeaweedFS refuses or normalizes most of these keys, so this module runs against moto's server,
which stores them verbatim (as AWS does)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.realparts.s3server import S3Server, start_moto
from tests.reliability.mount_process import MountProcess

pytestmark = [pytest.mark.s3, pytest.mark.fuse]

NAME_MAX = 255
ODD_KEYS = ["a//b", ".", "..", "./z", "q/../w", "n" * 300, "d/" + "m" * 256, "x", "x/y", "e/", "e//f"]
GOOD_FILES = {"good/one.txt": b"one\n", "good/two.bin": bytes(range(256)) * 40, "top.txt": b"top\n"}


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def odd_bucket_mount(moto_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MountProcess]:
    client = moto_server.client()
    bucket = f"odd-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    for key in ODD_KEYS:
        client.put_object(Bucket=bucket, Key=f"vol/{key}", Body=f"data:{key}".encode())
    for path, body in GOOD_FILES.items():
        client.put_object(Bucket=bucket, Key=f"vol/{path}", Body=body)
    root = tmp_path_factory.mktemp("odd")
    mount = MountProcess(
        f"s3://{bucket}/vol",
        root / "mnt",
        root / "cache",
        moto_server.endpoint_url,
        {**os.environ, **moto_server.env()},
        ["--metadata-ttl", "1s"],
    )
    try:
        yield mount.start()
    finally:
        mount.cleanup()


def walk_names(top: Path) -> tuple[list[str], list[OSError]]:
    names: list[str] = []
    errors: list[OSError] = []
    for _dirpath, dirnames, filenames in os.walk(top, onerror=errors.append):
        names += dirnames + filenames
    return names, errors


def test_every_listed_name_is_a_valid_file_name(odd_bucket_mount: MountProcess) -> None:
    names, _ = walk_names(odd_bucket_mount.mountpoint)
    bad = [n for n in names if not n or "/" in n or n in (".", "..") or len(n.encode()) > NAME_MAX]
    assert bad == []
    assert odd_bucket_mount.alive(), odd_bucket_mount.log_tail()


def test_dot_and_dot_dot_keys_do_not_add_a_second_dot_entry(odd_bucket_mount: MountProcess) -> None:
    # os.listdir hides "." and "..", so ask getdents through ls, which shows every entry the kernel got.
    listed = subprocess.run(["ls", "-1a", str(odd_bucket_mount.mountpoint)], capture_output=True, text=True)
    names = listed.stdout.splitlines()
    assert names.count(".") <= 1 and names.count("..") <= 1, names


def test_listing_is_the_same_every_time(odd_bucket_mount: MountProcess) -> None:
    first, _ = walk_names(odd_bucket_mount.mountpoint)
    second, _ = walk_names(odd_bucket_mount.mountpoint)
    assert sorted(first) == sorted(second)


def test_the_rest_of_the_tree_stays_listable_and_readable(odd_bucket_mount: MountProcess) -> None:
    mnt = odd_bucket_mount.mountpoint
    for _ in os.walk(mnt):  # touch every odd entry first
        pass
    for path in mnt.rglob("*"):
        with contextlib.suppress(OSError):  # an odd entry may refuse; the daemon must not die of it
            path.read_bytes() if path.is_file() else os.listdir(path)
    assert odd_bucket_mount.alive(), odd_bucket_mount.log_tail()
    assert sorted(os.listdir(mnt / "good")) == ["one.txt", "two.bin"]
    for path, body in GOOD_FILES.items():
        assert (mnt / path).read_bytes() == body


def test_a_key_that_is_both_a_file_and_a_prefix_shows_once_and_predictably(odd_bucket_mount: MountProcess) -> None:
    mnt = odd_bucket_mount.mountpoint
    assert os.listdir(mnt).count("x") == 1
    if (mnt / "x").is_dir():
        assert os.listdir(mnt / "x") == ["y"] and (mnt / "x" / "y").read_bytes() == b"data:x/y"
    else:
        assert (mnt / "x").read_bytes() == b"data:x"
    assert odd_bucket_mount.alive(), odd_bucket_mount.log_tail()


def test_double_slash_keys_do_not_break_their_directory(odd_bucket_mount: MountProcess) -> None:
    mnt = odd_bucket_mount.mountpoint
    assert (mnt / "a").is_dir()
    listing = os.listdir(mnt / "a")
    assert all(name and "/" not in name for name in listing)
    assert (mnt / "e").is_dir()
    assert odd_bucket_mount.alive(), odd_bucket_mount.log_tail()


def test_lookups_of_the_odd_names_fail_cleanly(odd_bucket_mount: MountProcess) -> None:
    mnt = odd_bucket_mount.mountpoint
    for name in ("n" * 300, "m" * 256):
        with pytest.raises(OSError):  # ENAMETOOLONG from the kernel or ENOENT from us; never a crash
            os.stat(mnt / name)
    with contextlib.suppress(OSError):  # `q/../w`: q may be hidden or empty, but answering must not kill
        assert ".." not in os.listdir(mnt / "q")
    assert odd_bucket_mount.alive(), odd_bucket_mount.log_tail()
