"""Several processes on one mount writing their own files and reading each other's closed files;
two mounts of the same prefix (two nodes) with a 1 s metadata TTL: a file closed on mount A (in S3,
writethrough) is what open() on mount B returns once the TTL has passed, overwrites of the same
size included; in writeback mode it shows up once uploaded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import soak
from tests.reliability.concurrent_writer import file_name, size_of
from tests.reliability.conftest import MountFactory
from tests.reliability.s3_contents import objects_under
from tests.reliability.workload import content_for, write_file

pytestmark = [pytest.mark.s3, pytest.mark.fuse]
REPO = Path(__file__).resolve().parents[2]
TTL_S = 1.0
AFTER_TTL_S = TTL_S + 0.3


def run_writers(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path, writers: int, files: int
) -> None:
    seed = soak.BASE_SEED
    mount = mount_factory()
    markers = tmp_path / "markers"
    markers.mkdir()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.concurrent_writer",
                str(mount.mountpoint),
                str(markers),
                "--writer",
                str(w),
                "--writers",
                str(writers),
                "--files",
                str(files),
                "--seed",
                str(seed),
            ],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    try:
        outcomes = [(p.wait(timeout=200), p.stderr.read() if p.stderr else "") for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [code for code, _ in outcomes] == [0] * writers, [err for _, err in outcomes]
    mount.flush()
    in_s3 = objects_under(s3_client, bucket, "vol/")
    for w in range(writers):
        for i in range(files):
            name = file_name(w, i)
            assert in_s3.get(name) == content_for(seed, name, size_of(seed, w, i)), f"{name} in S3"


def test_processes_read_each_others_closed_files_through_one_mount(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run_writers(mount_factory, s3_client, bucket, tmp_path, writers=4, files=12)


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_many_processes_read_each_others_closed_files_through_one_mount(
    mount_factory: MountFactory, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    run_writers(mount_factory, s3_client, bucket, tmp_path, writers=8, files=soak.pick(12, 60))


def read(path: Path) -> bytes:
    with open(path, "rb") as handle:  # a fresh open(): the moment close-to-open revalidates
        return handle.read()


def test_a_file_closed_on_mount_a_is_opened_on_mount_b_after_the_ttl(mount_factory: MountFactory) -> None:
    a = mount_factory(extra_args=["--cache-mode", "writethrough"])
    b = mount_factory()
    on_a, on_b = a.mountpoint / "shared.txt", b.mountpoint / "shared.txt"

    write_file(on_a, b"version one\n")
    time.sleep(AFTER_TTL_S)
    assert read(on_b) == b"version one\n"

    write_file(on_a, b"version two, longer\n")
    time.sleep(AFTER_TTL_S)
    assert read(on_b) == b"version two, longer\n"

    write_file(on_a, b"VERSION TWO, LONGER\n")  # same length and mtime second: only the ETag tells
    time.sleep(AFTER_TTL_S)
    assert read(on_b) == b"VERSION TWO, LONGER\n"


def test_creates_and_deletes_on_mount_a_show_on_mount_b_after_the_ttl(mount_factory: MountFactory) -> None:
    a = mount_factory(extra_args=["--cache-mode", "writethrough"])
    b = mount_factory()
    assert "new.txt" not in os.listdir(b.mountpoint)
    write_file(a.mountpoint / "new.txt", b"new\n")
    time.sleep(AFTER_TTL_S)
    assert "new.txt" in os.listdir(b.mountpoint)
    assert read(b.mountpoint / "new.txt") == b"new\n"
    os.unlink(a.mountpoint / "new.txt")
    time.sleep(AFTER_TTL_S)
    assert "new.txt" not in os.listdir(b.mountpoint)
    with pytest.raises(FileNotFoundError):
        read(b.mountpoint / "new.txt")


def test_writeback_close_on_mount_a_reaches_mount_b_once_uploaded(mount_factory: MountFactory) -> None:
    a = mount_factory()
    b = mount_factory()
    write_file(a.mountpoint / "wb.txt", b"written back\n")
    a.flush()
    time.sleep(AFTER_TTL_S)
    assert read(b.mountpoint / "wb.txt") == b"written back\n"
