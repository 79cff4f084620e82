"""The e2e fixture: the whole dev cluster (what `make dev-up` starts) on a temporary root, once per
module, and the check that `dev-down` leaves no process and no mount behind."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.fusemount import require_fuse
from tests.realparts.kubeapi import test_binary
from tests.realparts.processes import RealPartMissing


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dev_cluster.DevState]:
    try:
        require_fuse()
        test_binary("kube-apiserver")
        test_binary("etcd")
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
    # RAZORFS_E2E_ROOT keeps the cluster's logs where concurrent sessions' temp-dir rotation cannot
    # remove them (for debugging a failure).
    chosen = os.environ.get("RAZORFS_E2E_ROOT")
    root = Path(chosen) / uuid.uuid4().hex[:8] if chosen else tmp_path_factory.mktemp("dev")
    try:
        # Any free S3 port: a developer's own `make dev-up` may hold the well-known one.
        yield dev_cluster.up(root, s3_port=None)
    finally:
        dev_cluster.down(root)
        leftovers = [f"pid {pid}" for pid in dev_cluster.processes_under(root)] + dev_cluster.mounts_under(root)
        assert not leftovers, f"dev-down left behind: {leftovers}"


@pytest.fixture(scope="module")
def api(dev: dev_cluster.DevState) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=dev.kubeconfig)  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(api: Any, dev: dev_cluster.DevState) -> str:
    """A fresh namespace holding the S3 credentials Secret (no namespace controller runs: it stays)."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(name, dev_cluster.credentials_secret(name, dev.access_key, dev.secret_key))
    return name


@pytest.fixture
def s3(dev: dev_cluster.DevState) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=dev.s3_endpoint,
        aws_access_key_id=dev.access_key,
        aws_secret_access_key=dev.secret_key,
        region_name=dev.region,
        config=Config(s3={"addressing_style": "path"}),
    )
