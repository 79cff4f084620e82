"""Session fixtures that start the real parts once and always tear them down.

A missing real part fails the test with a message saying how to get it; only
RAZORFS_ALLOW_SKIP=1 turns that into a skip (never in CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.csi.signing_proxy import SigningProxy
from tests.realparts.faultproxy import FaultProxy
from tests.realparts.fusemount import force_unmount, require_fuse
from tests.realparts.kubeapi import ControlPlane, start_control_plane
from tests.realparts.processes import RealPartMissing
from tests.realparts.s3server import S3Server, start_s3_server

# Fails the session if the test S3 secret appears in any log under basetemp or in any test's output.
pytest_plugins = ["tests.reliability.secret_scan"]


def _missing(exc: RealPartMissing) -> None:
    if os.environ.get("RAZORFS_ALLOW_SKIP") == "1":
        pytest.skip(str(exc))
    pytest.fail(f"real part missing: {exc}", pytrace=False)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--s3-server",
        default=os.environ.get("RAZORFS_S3_SERVER", "seaweedfs"),
        choices=["seaweedfs", "moto"],
        help="which real S3 server the tests run against (env RAZORFS_S3_SERVER)",
    )


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    kind = request.config.getoption("--s3-server")
    try:
        server = start_s3_server(kind, tmp_path_factory.mktemp(f"s3-{kind}"))
    except RealPartMissing as exc:
        _missing(exc)
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's standalone server, for the few features the default server lacks (SSE-S3)."""
    server = start_s3_server("moto", tmp_path_factory.mktemp("s3-moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_server: S3Server) -> Any:
    return s3_server.client()


@pytest.fixture
def bucket(s3_server: S3Server, s3_client: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def fault_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's S3 server (point clients at
    `fault_proxy.endpoint_url`); starts with no faults and is stopped after the test."""
    proxy = FaultProxy(s3_server.endpoint_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def signing_proxy(s3_server: S3Server) -> Iterator[SigningProxy]:
    """A proxy in front of the S3 server that records which access key signed each request."""
    proxy = SigningProxy(s3_server.endpoint_url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        plane = start_control_plane(tmp_path_factory.mktemp("kube"))
    except RealPartMissing as exc:
        _missing(exc)
        raise
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube_api_client(kube_apiserver: ControlPlane) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(kube_apiserver.kubeconfig))


@pytest.fixture
def kube_namespace(kube_api_client: Any) -> Iterator[str]:
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    name = f"t-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    # No namespace controller runs, so the namespace stays Terminating; objects in it are the
    # test's own business.
    core.delete_namespace(name)


@pytest.fixture
def fuse_mountpoint(tmp_path: Path) -> Iterator[Path]:
    try:
        require_fuse()
    except RealPartMissing as exc:
        _missing(exc)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        yield mountpoint
    finally:
        force_unmount(mountpoint)
