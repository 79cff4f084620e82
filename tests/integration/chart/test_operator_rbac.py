"""The operator's RBAC in the chart is enough: razorfs-operator runs on a real apiserver as the chart's
ServiceAccount (a token user named system:serviceaccount:<ns>:<sa>, so the chart's own bindings apply
unchanged) with exactly the chart's ClusterRole, and still takes a RazorVolume to Ready and through
deletion, without a single Forbidden answer."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.realparts.kubeapi import ControlPlane, start_control_plane
from tests.realparts.kubeapply import Applier
from tests.realparts.processes import ManagedProcess, RealPartMissing
from tests.realparts.s3server import S3Server

from .helm import render

pytestmark = [pytest.mark.kube, pytest.mark.s3, pytest.mark.timeout(300)]

T = TypeVar("T")
NAMESPACE = "razorfs-system"
SERVICE_ACCOUNT = "razorfs-operator"  # the chart's name for release "razorfs"
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
OPERATOR_TOKEN = "razorfs-operator-rbac-test-token"


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 90) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s")


@pytest.fixture
def rbac_plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane of its own: the operator's token user exists only here."""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]
    try:
        plane = start_control_plane(tmp_path / "kube", extra_tokens={OPERATOR_TOKEN: (OPERATOR_USER, groups)})
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


def test_operator_reconciles_a_razorvolume_with_only_the_charts_rbac(
    rbac_plane: ControlPlane, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    from kubernetes import client, config

    admin = config.new_client_from_config(config_file=str(rbac_plane.kubeconfig))  # type: ignore[no-untyped-call]
    applier = Applier(admin)
    core: Any = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    # Exactly what the chart installs for the operator: CRD, ServiceAccount, (Cluster)Role(Binding)s.
    objs = render(release="razorfs", namespace=NAMESPACE)
    wanted = {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    for obj in objs:
        if obj["kind"] in wanted and "controller" not in obj["metadata"]["name"]:
            applier.apply(obj, namespace=NAMESPACE)
    ext: Any = client.ApiextensionsV1Api(admin)
    wait_for("CRD established", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in ext.read_custom_resource_definition("razorvolumes.razorfs.io").status.conditions or []))

    apps = "team-a"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=apps)))
    core.create_namespaced_secret(apps, {
        "metadata": {"name": "s3-creds"},
        "stringData": {"accessKeyID": s3_server.access_key, "secretAccessKey": s3_server.secret_key},
    })
    prefix = f"rbac-{uuid.uuid4().hex[:8]}"
    s3: Any = s3_server.client()  # type: ignore[no-untyped-call]
    s3.put_object(Bucket=bucket, Key=f"{prefix}/existing.txt", Body=b"x")

    # KUBECONFIG is a colon-separated list: the user's name (full of colons) must not be in the path.
    operator_kubeconfig = tmp_path / "operator-kubeconfig"
    operator_kubeconfig.write_text(rbac_plane.kubeconfig_for(OPERATOR_USER).read_text())
    operator = ManagedProcess(
        "razorfs-operator",
        [str(Path(sys.executable).with_name("razorfs-operator")), "--liveness=", f"--node-namespace={NAMESPACE}",
         "--resync-interval-s=5", "--retry-delay-s=1", "--deletion-retry-delay-s=1"],
        tmp_path / "operator.log",
        env={"KUBECONFIG": str(operator_kubeconfig)},
    )
    # PVC/PV protection finalizers are removed by their real controllers.
    rbac_plane.start_controller_manager(["pvc-protection", "pv-protection"])
    custom: Any = client.CustomObjectsApi(admin)
    try:
        custom.create_namespaced_custom_object("razorfs.io", "v1alpha1", apps, "razorvolumes", {
            "apiVersion": "razorfs.io/v1alpha1",
            "kind": "RazorVolume",
            "metadata": {"name": "vol"},
            "spec": {
                "s3": {"endpoint": s3_server.endpoint_url, "bucket": bucket, "prefix": prefix,
                       "region": s3_server.region, "secretRef": {"name": "s3-creds"}},
                "reclaimPolicy": "Delete",
            },
        })

        def rv() -> Any:
            return custom.get_namespaced_custom_object("razorfs.io", "v1alpha1", apps, "razorvolumes", "vol")

        def ready() -> dict[str, Any] | None:
            operator.check_alive()
            status: dict[str, Any] = rv().get("status") or {}
            return status if status.get("phase") == "Ready" else None

        status = ready_status = wait_for("RazorVolume Ready under the chart's RBAC", ready)
        assert core.read_namespaced_persistent_volume_claim(status["claimName"], apps)
        assert core.read_persistent_volume(ready_status["persistentVolumeName"])
        # Usage needs the S3 credentials from the Secret (get secrets) and a resync (patch status).
        wait_for("usage in status", lambda: (rv().get("status") or {}).get("usage", {}).get("objects", 0) >= 1)

        custom.delete_namespaced_custom_object("razorfs.io", "v1alpha1", apps, "razorvolumes", "vol")

        def deleted() -> bool:
            from kubernetes.client.exceptions import ApiException

            try:
                rv()
            except ApiException as exc:
                return bool(exc.status == 404)
            return False

        wait_for("RazorVolume deleted under the chart's RBAC", deleted)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
        assert listed.get("KeyCount", 0) == 0, "reclaimPolicy Delete removed the objects"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{operator.log_tail(40)}") from None
    finally:
        operator.stop()
    log = operator.log_path.read_text(errors="replace")
    assert "Forbidden" not in log and " 403" not in log, [ln for ln in log.splitlines() if "403" in ln][:5]
