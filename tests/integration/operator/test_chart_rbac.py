"""The operator does its whole job (Ready, status, events, deletion with object removal) with only
the permissions the Helm chart's operator ClusterRole grants, authenticated as a ServiceAccount."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.realparts import kubeapi

from .conftest import (
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    ProtectionStandIn,
    assert_no_secret_in,
    events_with_reason,
    eventually,
    razorvolume,
    start_operator,
)

pytestmark = [pytest.mark.kube, pytest.mark.s3]


def chart_operator_rules() -> list[dict[str, Any]]:
    rendered = subprocess.run(
        [
            str(kubeapi.test_binary("helm")),
            "template",
            "rel",
            str(REPO / "charts" / "razorfs"),
            "--kube-version",
            "1.35.0",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "rel-razorfs-operator":
            rules: list[dict[str, Any]] = doc["rules"]
            return rules
    raise AssertionError("the chart renders no operator ClusterRole")


@pytest.fixture
def service_account_kubeconfig(
    kube_apiserver: Any, kube_api_client: Any, core_api: Any, kube_namespace: str, tmp_path: Path
) -> Iterator[Path]:
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(kube_api_client)
    role = f"razorfs-operator-{uuid.uuid4().hex[:6]}"
    core_api.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "operator"}})
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": chart_operator_rules()})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": kube_namespace}],
        }
    )
    try:
        token = core_api.create_namespaced_service_account_token(
            "operator", kube_namespace, {"spec": {"expirationSeconds": 3600}}
        ).status.token
        config = yaml.safe_load(kube_apiserver.kubeconfig.read_text())
        config["users"][0]["user"] = {"token": token}
        path = tmp_path / "kubeconfig-operator-sa"
        path.write_text(yaml.safe_dump(config))
        yield path
    finally:
        rbac.delete_cluster_role_binding(role)
        rbac.delete_cluster_role(role)


def test_operator_works_with_only_the_charts_cluster_role(
    service_account_kubeconfig: Path,
    kube_api_client: Any,
    custom_api: Any,
    core_api: Any,
    kube_namespace: str,
    s3_server: Any,
    bucket: str,
    s3_secret: str,
    tmp_path: Path,
) -> None:
    env = {"RAZORFS_OPERATOR_NODE_NAMESPACE": kube_namespace}
    operator = start_operator(service_account_kubeconfig, tmp_path / "operator", extra_env=env)
    try:
        spec = {
            "s3": {
                "endpoint": s3_server.endpoint_url,
                "bucket": bucket,
                "prefix": "vol",
                "secretRef": {"name": s3_secret},
            },
            "reclaimPolicy": "Delete",
        }
        custom_api.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, razorvolume("rbac", spec))

        def status() -> dict[str, Any]:
            rv = custom_api.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "rbac")
            found: dict[str, Any] = rv.get("status") or {}
            return found

        eventually(lambda: status().get("phase") == "Ready" and "usage" in status(), 30, "Ready with usage")
        events_with_reason(core_api, kube_namespace, "rbac", "Ready")
        s3_server.client().put_object(Bucket=bucket, Key="vol/a", Body=b"a")
        with ProtectionStandIn(kube_api_client):
            custom_api.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "rbac")
            eventually(
                lambda: not custom_api.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL)["items"],
                30,
                "RazorVolume deleted",
            )
        assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)
        log = operator.log()
        assert "Forbidden" not in log, log[-3000:]
    finally:
        operator.kill(signal.SIGTERM)
        assert_no_secret_in(operator.log())
