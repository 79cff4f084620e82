"""The e2e fixture: the dev cluster (a real node with the chart installed, what `make dev-up` starts)
on a temporary root, once per session, and the check that `dev-down` leaves the machine as found:
no process, mount, interface, iptables rule, cgroup or changed sysctl."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.cluster import node
from tests.realparts.cluster.host_state import HostState
from tests.realparts.processes import RealPartMissing

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The e2e tier runs after every other test (its cluster lives only while it runs), and the
    test that ends the shared cluster (dev-down) runs last of all."""
    items.sort(key=lambda item: (E2E_DIR in item.path.parents, item.get_closest_marker("ends_cluster") is not None))


@pytest.fixture(scope="session")
def host_before() -> HostState:
    return HostState.record()


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory, host_before: HostState) -> Iterator[dev_cluster.DevState]:
    try:
        node.require_node_parts()
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
    # RAZORFS_E2E_ROOT keeps the cluster's logs where temp-dir rotation cannot remove them.
    chosen = os.environ.get("RAZORFS_E2E_ROOT")
    root = Path(chosen) / uuid.uuid4().hex[:8] if chosen else tmp_path_factory.mktemp("dev")
    try:
        # Any free S3 port: a developer's own `make dev-up` may hold the well-known one.
        yield dev_cluster.up(root, s3_port=None)
    finally:
        dev_cluster.down(root)
        left = node.leftovers(root / "node", host_before) + [f"pid {p}" for p in node.processes_under(root)]
        assert not left, f"dev-down left behind: {left}"


@pytest.fixture(scope="session")
def api(dev: dev_cluster.DevState) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=dev.kubeconfig)  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(api: Any, dev: dev_cluster.DevState) -> Iterator[str]:
    """A fresh namespace holding the S3 credentials Secret; deleted (with its pods) afterwards."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(name, dev_cluster.credentials_secret(name, dev.access_key, dev.secret_key))
    yield name
    if dev_cluster.is_up(Path(dev.root)):  # the dev-down test ends the cluster
        dev.node.kubectl("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=180s", check=False)


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
