"""Fixtures of the reliability suite: mounts of a fresh bucket (directly or through the fault
proxy) that are always unmounted and killed at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.realparts.fusemount import require_fuse
from tests.realparts.processes import RealPartMissing
from tests.realparts.s3server import S3Server
from tests.reliability.mount_process import MountProcess

MountFactory = Callable[..., MountProcess]


@pytest.fixture
def mount_factory(s3_server: S3Server, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MountFactory]:
    """`mount_factory(prefix="vol", endpoint_url=None, metadata_ttl="1s", cache_dir=None, start=True)`
    mounts s3://<bucket>/<prefix> at a fresh mountpoint; every mount made is cleaned up."""
    try:
        require_fuse()
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
    made: list[MountProcess] = []

    def factory(
        prefix: str = "vol",
        endpoint_url: str | None = None,
        metadata_ttl: str = "1s",
        cache_dir: Path | None = None,
        extra_args: list[str] | None = None,
        start: bool = True,
    ) -> MountProcess:
        # Short paths keep the control socket well inside sun_path's 108 bytes.
        root = tmp_path_factory.mktemp("rm")
        mount = MountProcess(
            url=f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
            mountpoint=root / "mnt",
            cache_dir=cache_dir or root / "cache",
            endpoint_url=endpoint_url or s3_server.endpoint_url,
            env={**os.environ, **s3_server.env()},
            extra_args=["--metadata-ttl", metadata_ttl, *(extra_args or [])],
        )
        made.append(mount)
        return mount.start() if start else mount

    try:
        yield factory
    finally:
        for mount in made:
            mount.cleanup()
