"""Fixtures of the reliability suite: mounts of a fresh bucket (directly or through the fault
proxy) that are always unmounted and killed at teardown."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.realparts.fusemount import require_fuse
from tests.realparts.processes import RealPartMissing, wait_until
from tests.realparts.s3server import S3Server
from tests.reliability.mount_process import MountProcess

MountFactory = Callable[..., MountProcess]
CRD_FILE = Path(__file__).resolve().parents[2] / "charts" / "razorfs" / "files" / "razorvolumes-crd.yaml"
GROUP, VERSION, PLURAL = "razorfs.io", "v1alpha1", "razorvolumes"


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


@pytest.fixture(scope="session")
def razorvolume_api(kube_api_client: Any) -> Any:
    """CustomObjectsApi with the chart's CRD applied as shipped (created, or replaced if another
    suite applied it already) and served."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    manifest = yaml.safe_load(CRD_FILE.read_text())
    api = client.ApiextensionsV1Api(kube_api_client)
    name = manifest["metadata"]["name"]
    try:
        api.create_custom_resource_definition(manifest)
    except ApiException as exc:
        if exc.status != 409:
            raise
        manifest["metadata"]["resourceVersion"] = api.read_custom_resource_definition(name).metadata.resource_version
        api.replace_custom_resource_definition(name, manifest)
    objects = client.CustomObjectsApi(kube_api_client)

    def served() -> bool:
        try:
            objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException:
            return False
        return True

    wait_until(served, 30, "RazorVolume endpoint served")
    return objects
