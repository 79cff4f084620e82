"""The operator's RBAC in the chart is exactly what it needs, in both of the chart's modes
(operator.clusterWide true and false). razorfs-operator runs on a real apiserver as the chart's
ServiceAccount (a token user named system:serviceaccount:<ns>:<sa>, so the chart's own bindings
apply unchanged) with exactly the chart's (Cluster)Roles, and takes a RazorVolume through every
path that asks the API server for something: Ready, usage, a grown capacity (PV and claim status
patched), deletion with reclaimPolicy Delete. The apiserver's audit log of the operator's requests
then shows that the rules suffice (not one Forbidden answer) and that each is needed (every verb of
every rule was used: a rule nobody uses is a permission to remove)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
RELEASE = "razorfs"
NAMESPACE = "razorfs-system"
OPERATOR = f"{RELEASE}-operator"  # the chart's name of the operator's ServiceAccount, roles, Deployment
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:{OPERATOR}"
OPERATOR_TOKEN = "razorfs-operator-rbac-test-token"
# The operator's flags that decide what it asks the API server for, taken from the chart's Deployment.
CHART_FLAGS = ("--namespace=", "--node-namespace=", "--node-selector=")
# Permissions of the chart the flow below cannot reach, each with the reason it stays: none today.
EXEMPT: dict[tuple[str, str, str], str] = {}


@dataclass(frozen=True)
class Request:
    """One request of the operator as the audit log has it; `resource` is "resource[/subresource]"."""

    api_group: str
    resource: str
    verb: str
    namespace: str | None

    @classmethod
    def from_audit(cls, event: dict[str, Any]) -> Request | None:
        ref = event.get("objectRef")
        if ref is None or "resource" not in ref:  # discovery and other non-resource URLs
            return None
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        return cls(ref.get("apiGroup", ""), resource, event["verb"], ref.get("namespace"))

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.verb} {self.api_group or 'core'}/{self.resource}{where}"


@dataclass(frozen=True)
class Permission:
    """One verb of one rule; `namespace` None: a ClusterRole's (every namespace and cluster scope)."""

    kind: str
    api_group: str
    resource: str
    verb: str
    namespace: str | None

    def allows(self, request: Request) -> bool:
        return (
            (self.api_group, self.resource, self.verb) == (request.api_group, request.resource, request.verb)
            and self.namespace in (None, request.namespace)
        )

    def __str__(self) -> str:
        return f"{self.kind} {self.verb} {self.api_group or 'core'}/{self.resource}"


def operator_permissions(objs: list[dict[str, Any]]) -> list[Permission]:
    found = []
    for obj in objs:
        if obj["kind"] not in ("ClusterRole", "Role") or obj["metadata"]["name"] != OPERATOR:
            continue
        namespace = obj["metadata"]["namespace"] if obj["kind"] == "Role" else None
        for rule in obj.get("rules") or []:
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule, f"test does not model {rule}"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found += [Permission(obj["kind"], group, resource, verb, namespace) for verb in rule["verbs"]]
    assert found, f"no ClusterRole/Role {OPERATOR} in the chart"
    return found


def operator_flags(objs: list[dict[str, Any]]) -> list[str]:
    deployment = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == OPERATOR)
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator")
    return [arg for arg in container["args"] if arg.startswith(CHART_FLAGS)]


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
    """A control plane of its own: the operator's token user exists only here, and only its requests
    are audited."""
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"]
    try:
        plane = start_control_plane(
            tmp_path / "kube", extra_tokens={OPERATOR_TOKEN: (OPERATOR_USER, groups)}, audit_users=[OPERATOR_USER]
        )
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.mark.parametrize("cluster_wide", [True, False], ids=["cluster-wide", "namespaced"])
def test_operator_uses_every_permission_of_the_charts_rbac_and_needs_no_other(
    rbac_plane: ControlPlane, s3_server: S3Server, bucket: str, tmp_path: Path, cluster_wide: bool
) -> None:
    from kubernetes import client, config

    admin = config.new_client_from_config(config_file=str(rbac_plane.kubeconfig))  # type: ignore[no-untyped-call]
    applier = Applier(admin)
    core: Any = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    # Exactly what the chart installs for the operator: CRD, ServiceAccount, (Cluster)Role(Binding)s.
    objs = render(release=RELEASE, namespace=NAMESPACE, sets={"operator.clusterWide": str(cluster_wide).lower()})
    wanted = {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    for obj in objs:
        if obj["kind"] in wanted and "controller" not in obj["metadata"]["name"]:
            applier.apply(obj, namespace=NAMESPACE)
    ext: Any = client.ApiextensionsV1Api(admin)
    wait_for("CRD established", lambda: any(
        c.type == "Established" and c.status == "True"
        for c in ext.read_custom_resource_definition("razorvolumes.razorfs.io").status.conditions or []))

    # Cluster-wide, the volume lives in an application's namespace; namespaced, in the release's.
    apps = "team-a" if cluster_wide else NAMESPACE
    if apps != NAMESPACE:
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
        [str(Path(sys.executable).with_name("razorfs-operator")), "--liveness=", *operator_flags(objs),
         "--resync-interval-s=2", "--retry-delay-s=1", "--deletion-retry-delay-s=1"],
        tmp_path / "operator.log",
        env={"KUBECONFIG": str(operator_kubeconfig)},
    )
    # The binder binds the claim to its pre-bound PV (which gives the claim a status capacity to
    # grow); PVC/PV protection finalizers are removed by their real controllers.
    rbac_plane.start_controller_manager(["persistentvolume-binder", "pvc-protection", "pv-protection"])
    custom: Any = client.CustomObjectsApi(admin)
    razorvolume = ("razorfs.io", "v1alpha1", apps, "razorvolumes", "vol")
    try:
        custom.create_namespaced_custom_object(*razorvolume[:4], {
            "apiVersion": "razorfs.io/v1alpha1",
            "kind": "RazorVolume",
            "metadata": {"name": "vol"},
            "spec": {
                "s3": {"endpoint": s3_server.endpoint_url, "bucket": bucket, "prefix": prefix,
                       "region": s3_server.region, "secretRef": {"name": "s3-creds"}},
                "capacity": "1Ti",
                "reclaimPolicy": "Delete",
            },
        })

        def rv() -> Any:
            return custom.get_namespaced_custom_object(*razorvolume)

        def ready() -> dict[str, Any] | None:
            operator.check_alive()
            status: dict[str, Any] = rv().get("status") or {}
            return status if status.get("phase") == "Ready" else None

        status = wait_for("RazorVolume Ready under the chart's RBAC", ready)
        claim_name, pv_name = status["claimName"], status["persistentVolumeName"]
        # Usage needs the S3 credentials from the Secret (get secrets) and a resync (patch status).
        wait_for("usage in status", lambda: (rv().get("status") or {}).get("usage", {}).get("objects", 0) >= 1)

        def claim_capacity() -> str | None:
            claim = core.read_namespaced_persistent_volume_claim(claim_name, apps)
            return ((claim.status.capacity or {}) if claim.status else {}).get("storage")

        wait_for("claim bound by the PV controller", lambda: claim_capacity() == "1Ti")
        # A grown capacity: the operator patches the PV and the claim's status.
        custom.patch_namespaced_custom_object(*razorvolume, {"spec": {"capacity": "2Ti"}})
        wait_for("PV capacity grown", lambda: core.read_persistent_volume(pv_name).spec.capacity["storage"] == "2Ti")
        wait_for("claim capacity grown", lambda: claim_capacity() == "2Ti")

        custom.delete_namespaced_custom_object(*razorvolume)

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

    events = [e for e in rbac_plane.audit_events() if e["user"]["username"] == OPERATOR_USER]
    assert events, "the audit log has none of the operator's requests"
    refused = sorted({
        str(Request.from_audit(e) or e["requestURI"]) for e in events
        if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid"
        or (e.get("responseStatus") or {}).get("code") == 403
    })
    assert not refused, f"the chart's RBAC refused the operator: {refused}"
    allowed = {
        request for e in events
        if (e.get("annotations") or {}).get("authorization.k8s.io/decision") == "allow"
        and (request := Request.from_audit(e)) is not None
    }
    permissions = operator_permissions(objs)
    unused = [
        str(p) for p in permissions
        if (p.api_group, p.resource, p.verb) not in EXEMPT and not any(p.allows(r) for r in allowed)
    ]
    assert not unused, (
        f"permissions of the chart's operator RBAC the operator never used (remove them, or exempt them "
        f"with a reason): {unused}; its requests: {sorted(map(str, allowed))}"
    )
    # Everything the operator was allowed is the chart's doing (not some default role's).
    beyond = sorted(str(r) for r in allowed if not any(p.allows(r) for p in permissions))
    assert not beyond, f"requests allowed by no rule of the chart: {beyond}"
