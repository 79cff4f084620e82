"""The Helm chart: lint-clean, renders what a cluster needs, and every rendered object is accepted by
a real kube-apiserver (server-side dry run) for the default values and with every option on."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.realparts.kubeapply import Applier

from .helm import CHART, helm, render

ALL_ON = Path(__file__).with_name("values-all-on.yaml")

# The Prometheus Operator's CRD, reduced to what the apiserver needs to accept ServiceMonitors.
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                },
            }
        ],
    },
}


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    for c in pod_owner["spec"]["template"]["spec"]["containers"]:
        if c["name"] == name:
            found: dict[str, Any] = c
            return found
    raise AssertionError(f"no container {name}")


@pytest.mark.parametrize("values", [(), (ALL_ON,)], ids=["default", "all-on"])
def test_helm_lint_strict_reports_no_errors_or_warnings(values: tuple[Path, ...]) -> None:
    args = ["lint", str(CHART), "--strict"]
    for path in values:
        args += ["--values", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


def test_values_schema_rejects_unknown_keys_and_bad_enums() -> None:
    for bad in ("logLevel=chatty", "storageClass.cacheMode=sometimes", "operatr.enabled=true", "node.adminPort=0"):
        result = helm("template", "r", str(CHART), "--kube-version", "1.35.0", "--set", bad)
        assert result.returncode != 0, f"--set {bad} was accepted"
        assert "schema" in result.stderr, result.stderr


def test_default_values_render_operator_node_controller_driver_and_rbac() -> None:
    objs = render()
    kinds = {o["kind"] for o in objs}
    assert {
        "Deployment",
        "DaemonSet",
        "CSIDriver",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
    } <= kinds
    assert not by_kind(objs, "StorageClass"), "the StorageClass is opt-in"
    assert not by_kind(objs, "ServiceMonitor"), "ServiceMonitors are opt-in"
    accounts = {o["metadata"]["name"] for o in by_kind(objs, "ServiceAccount")}
    assert accounts == {"razorfs-operator", "razorfs-node", "razorfs-controller"}


def test_chart_ships_the_razorvolume_crd() -> None:
    crds = [o for o in render() if o["kind"] == "CustomResourceDefinition"]
    assert [c["metadata"]["name"] for c in crds] == ["razorvolumes.razorfs.io"]
    assert crds[0]["spec"]["names"].get("shortNames") == ["rv"]


def test_operator_runs_non_root_with_read_only_root_resources_and_probes() -> None:
    deploy = one(render(), "Deployment", "-operator")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    op = container(deploy, "operator")
    assert op["command"] == ["razorfs-operator"]
    assert op["securityContext"]["readOnlyRootFilesystem"] is True
    assert op["securityContext"]["allowPrivilegeEscalation"] is False
    assert op["resources"]["requests"] and op["resources"]["limits"]
    assert op["livenessProbe"]["httpGet"] and op["readinessProbe"]["httpGet"]
    assert pod["serviceAccountName"] == "razorfs-operator"


def test_node_plugin_is_privileged_with_fuse_bidirectional_kubelet_dir_and_sidecars() -> None:
    ds = one(render(), "DaemonSet", "-node")
    spec = ds["spec"]["template"]["spec"]
    node = container(ds, "node")
    assert node["command"] == ["razorfs-node"]
    assert node["securityContext"]["privileged"] is True
    mounts = {m["name"]: m for m in node["volumeMounts"]}
    assert mounts["kubelet-dir"]["mountPath"] == "/var/lib/kubelet"
    assert mounts["kubelet-dir"]["mountPropagation"] == "Bidirectional"
    assert mounts["fuse-device"]["mountPath"] == "/dev/fuse"
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths["state-dir"] == "/var/lib/razorfs/state"
    assert host_paths["cache-dir"] == "/var/lib/razorfs/cache"
    assert host_paths["plugin-dir"] == "/var/lib/kubelet/plugins/razorfs.csi.io"
    assert "--mode=node" in node["args"] and "--node-id=$(NODE_NAME)" in node["args"]
    registrar = container(ds, "node-driver-registrar")
    assert "--kubelet-registration-path=/var/lib/kubelet/plugins/razorfs.csi.io/csi.sock" in registrar["args"]
    container(ds, "liveness-probe")
    assert {"operator": "Exists"} in spec["tolerations"]


def test_kubelet_dir_value_moves_every_kubelet_path() -> None:
    ds = one(render(sets={"kubeletDir": "/var/lib/k0s/kubelet"}), "DaemonSet", "-node")
    text = str(ds)
    assert "/var/lib/kubelet" not in text
    assert "/var/lib/k0s/kubelet/plugins_registry" in text


def test_csidriver_needs_no_attach_wants_pod_info_and_serves_persistent_volumes() -> None:
    driver = one(render(), "CSIDriver")
    assert driver["metadata"]["name"] == "razorfs.csi.io"
    assert driver["spec"]["attachRequired"] is False
    assert driver["spec"]["podInfoOnMount"] is True
    assert driver["spec"]["volumeLifecycleModes"] == ["Persistent"]


def test_csidriver_asks_kubelet_for_the_pods_token_and_a_republish_before_it_expires() -> None:
    spec = one(render(), "CSIDriver")["spec"]
    assert spec["tokenRequests"] == [{"audience": "sts.amazonaws.com", "expirationSeconds": 3600}]
    assert spec["requiresRepublish"] is True
    custom = one(render(sets={"node.tokenAudience": "minio-sts"}), "CSIDriver")["spec"]
    assert custom["tokenRequests"][0]["audience"] == "minio-sts"


def test_controller_runs_external_provisioner_next_to_the_plugin_in_controller_mode() -> None:
    deploy = one(render(), "Deployment", "-controller")
    assert "--mode=controller" in container(deploy, "controller")["args"]
    assert "--csi-address=/csi/csi.sock" in container(deploy, "csi-provisioner")["args"]


def test_storageclass_names_our_driver_and_the_stage_and_provisioner_secrets() -> None:
    sc = one(render(values_files=(ALL_ON,)), "StorageClass")
    assert sc["provisioner"] == "razorfs.csi.io"
    params = sc["parameters"]
    assert params["bucket"] == "example-bucket" and params["endpoint"] == "https://s3.example.com"
    assert params["csi.storage.k8s.io/node-stage-secret-name"] == "s3-creds"
    assert params["csi.storage.k8s.io/provisioner-secret-namespace"] == "storage"
    assert params["uid"] == "1000"
    assert params["prefixTemplate"] == "${pvc.metadata.namespace}/${pvc.metadata.name}"
    assert (
        "prefixTemplate"
        not in one(
            render(
                sets={"storageClass.create": "true", "storageClass.endpoint": "http://s3", "storageClass.bucket": "b"}
            ),
            "StorageClass",
        )["parameters"]
    )
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"


def test_storageclass_without_bucket_fails_to_render_with_a_message() -> None:
    result = helm(
        "template",
        "r",
        str(CHART),
        "--kube-version",
        "1.35.0",
        "--set",
        "storageClass.create=true",
        "--set",
        "storageClass.endpoint=http://s3",
    )
    assert result.returncode != 0
    assert "storageClass.bucket is required" in result.stderr


def test_node_admin_is_tls_with_the_operators_audience_bound_token_and_no_shared_secret() -> None:
    objs = render()
    assert not [o for o in by_kind(objs, "Secret") if "admin" in o["metadata"]["name"]]
    node = container(one(objs, "DaemonSet", "-node"), "node")
    assert "--admin-tls" in node["args"]
    assert "--admin-allowed-service-account=razorfs/razorfs-operator" in node["args"]
    assert not [a for a in node["args"] if a.startswith("--admin-token-file")]
    operator_deploy = one(objs, "Deployment", "-operator")
    operator = container(operator_deploy, "operator")
    assert "--node-admin-tls=true" in operator["args"]
    token_file = "--node-admin-token-file=/var/run/secrets/razorfs/node-admin/token"
    assert token_file in operator["args"]
    (projected,) = [
        v for v in operator_deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "node-admin-token"
    ]
    source = projected["projected"]["sources"][0]["serviceAccountToken"]
    assert source["audience"] == "razorfs-node-admin" and source["expirationSeconds"] <= 3600
    node_role = one(objs, "ClusterRole", "-node")
    assert node_role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]
    # Mount pods: only in the release namespace, and no update (a pod is replaced, never changed).
    mount_pods_role = one(objs, "Role", "-node-mount-pods")
    assert mount_pods_role["metadata"]["namespace"] == "razorfs"
    pod_verbs = ["create", "get", "list", "delete"]
    assert mount_pods_role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": pod_verbs}]


def test_network_policy_lets_only_operator_pods_reach_the_admin_port() -> None:
    policy = one(render(), "NetworkPolicy", "-node-admin")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "node"
    admin_rule, open_rule = policy["spec"]["ingress"]
    assert admin_rule["ports"] == [{"protocol": "TCP", "port": 9810}]
    (source,) = admin_rule["from"]
    assert source["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert 9810 not in [p["port"] for p in open_rule["ports"]] and "from" not in open_rule
    assert not by_kind(render(sets={"nodeAdmin.networkPolicy": "false"}), "NetworkPolicy")


def test_pods_get_only_the_privileges_they_use() -> None:
    objs = render()
    ds = one(objs, "DaemonSet", "-node")
    pod = ds["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    node = container(ds, "node")
    security = node["securityContext"]
    assert security["privileged"] is True
    assert "capabilities" not in security and "allowPrivilegeEscalation" not in security
    assert {m["name"] for m in node["volumeMounts"]} >= {"kube-api-access"}
    for name in ("node-driver-registrar", "liveness-probe"):
        sidecar = container(ds, name)
        assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
        assert sidecar["securityContext"]["allowPrivilegeEscalation"] is False
        assert "kube-api-access" not in {m["name"] for m in sidecar.get("volumeMounts", [])}


def test_metrics_ports_are_annotated_and_service_monitors_are_optional() -> None:
    objs = render(values_files=(ALL_ON,))
    for owner in by_kind(objs, "Deployment") + by_kind(objs, "DaemonSet"):
        annotations = owner["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        containers = owner["spec"]["template"]["spec"]["containers"]
        ports = [p["containerPort"] for c in containers for p in c.get("ports", [])]
        assert int(annotations["prometheus.io/port"]) in ports
    monitors = by_kind(objs, "ServiceMonitor")
    assert len(monitors) == 3
    assert all(m["metadata"]["labels"]["release"] == "prometheus" for m in monitors)


def test_namespaced_operator_gets_a_role_instead_of_cluster_wide_access() -> None:
    objs = render(values_files=(ALL_ON,))
    cluster_rules = one(objs, "ClusterRole", "-operator")["rules"]
    assert not any("razorvolumes" in r["resources"] for r in cluster_rules)
    role = one(objs, "Role", "-operator")
    assert any("razorvolumes" in r["resources"] for r in role["rules"])


def test_no_role_grants_wildcards_or_secret_writes() -> None:
    for values in [(), (ALL_ON,)]:
        for role in [o for o in render(values_files=values) if o["kind"] in ("ClusterRole", "Role")]:
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
                if "secrets" in rule["resources"]:
                    assert set(rule["verbs"]) <= {"get"}, role["metadata"]["name"]


# --- server-side dry run against the real apiserver -------------------------------------------


def ensure_crd(applier: Applier, crd: dict[str, Any], kube_api_client: Any) -> None:
    from kubernetes import client

    applier.apply(crd)
    ext: Any = client.ApiextensionsV1Api(kube_api_client)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = ext.read_custom_resource_definition(crd["metadata"]["name"]).status
        if any(c.type == "Established" and c.status == "True" for c in (status.conditions or [])):
            return
        time.sleep(0.2)
    raise AssertionError(f"CRD {crd['metadata']['name']} not established")


@pytest.mark.kube
@pytest.mark.parametrize("values", [(), (ALL_ON,)], ids=["default", "all-on"])
def test_every_rendered_object_passes_server_side_dry_run(
    values: tuple[Path, ...], kube_api_client: Any, kube_namespace: str
) -> None:
    release = f"r{uuid.uuid4().hex[:8]}"
    objs = render(
        release=release,
        namespace=kube_namespace,
        values_files=values,
        # The all-on file names a secret namespace of its own; point it at one that exists here.
        sets={"storageClass.secretNamespace": kube_namespace, "storageClass.name": f"{release}-sc"} if values else None,
    )
    applier = Applier(kube_api_client)
    if any(o["kind"] == "ServiceMonitor" for o in objs):
        ensure_crd(applier, SERVICE_MONITOR_CRD, kube_api_client)
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    for crd in crds:
        applier.apply(crd, dry_run=True)
    rest = [o for o in objs if o["kind"] != "CustomResourceDefinition"]
    accepted = []
    for obj in rest:
        result = applier.apply(obj, namespace=kube_namespace, dry_run=True)
        assert result.metadata.name == obj["metadata"]["name"]
        accepted.append(obj["kind"])
    assert "DaemonSet" in accepted and "CSIDriver" in accepted
    # A dry run persists nothing.
    for obj in rest:
        from kubernetes.dynamic.exceptions import NotFoundError

        with pytest.raises(NotFoundError):
            applier.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], kube_namespace)


def test_allowed_endpoints_reach_the_operator_as_one_flag() -> None:
    operator = container(one(render(), "Deployment", "-operator"), "operator")
    assert not [a for a in operator["args"] if a.startswith("--allowed-endpoints")]
    objs = render(sets={"operator.allowedEndpoints": "{https://*.amazonaws.com,http://minio.storage:9000}"})
    operator = container(one(objs, "Deployment", "-operator"), "operator")
    assert "--allowed-endpoints=https://*.amazonaws.com,http://minio.storage:9000" in operator["args"]


# --- Kubernetes volume semantics: CRD as a template, expansion, claim prefixes ----------------

CRD_SOURCE = CHART / "files" / "razorvolumes-crd.yaml"


def test_crd_is_a_template_rendered_from_its_file_and_kept_on_uninstall() -> None:
    import yaml

    crd = one(render(include_crds=False), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_SOURCE.read_text())
    assert crd["spec"] == source["spec"]  # numbers and strings survive fromYaml/toYaml unchanged
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert crd["metadata"]["labels"]["app.kubernetes.io/component"] == "crd"
    assert not (CHART / "crds").exists(), "crds/ is installed once and never upgraded by Helm"
    assert not by_kind(render(sets={"crds.install": "false"}), "CustomResourceDefinition")
    unkept = one(render(sets={"crds.keep": "false"}), "CustomResourceDefinition")
    assert "annotations" not in unkept["metadata"]


def test_controller_runs_the_real_csi_resizer_with_rbac_for_claim_status() -> None:
    objs = render()
    resizer = container(one(objs, "Deployment", "-controller"), "csi-resizer")
    assert resizer["image"] == "registry.k8s.io/sig-storage/csi-resizer:v2.2.1"
    assert "--csi-address=/csi/csi.sock" in resizer["args"] and "--leader-election" in resizer["args"]
    assert resizer["securityContext"]["readOnlyRootFilesystem"] is True
    rules = one(objs, "ClusterRole", "-controller")["rules"]
    assert any("persistentvolumeclaims/status" in r["resources"] and "patch" in r["verbs"] for r in rules)
    assert any("persistentvolumes" in r["resources"] and "patch" in r["verbs"] for r in rules)
    image = "registry.local/csi-resizer:dev"
    custom = one(render(sets={"sidecars.resizer.image": image}), "Deployment", "-controller")
    assert container(custom, "csi-resizer")["image"] == image


def test_storageclass_allows_expansion_and_passes_the_expand_secret() -> None:
    sets = {"storageClass.create": "true", "storageClass.endpoint": "http://s3", "storageClass.bucket": "b"}
    sc = one(render(sets=sets), "StorageClass")
    assert sc["allowVolumeExpansion"] is True
    assert sc["parameters"]["csi.storage.k8s.io/controller-expand-secret-name"] == "razorfs-s3-credentials"
    assert sc["parameters"]["csi.storage.k8s.io/controller-expand-secret-namespace"] == "razorfs"
    assert one(render(values_files=(ALL_ON,)), "StorageClass")["mountOptions"] == ["ro"]


def test_operator_may_report_a_grown_claim_capacity() -> None:
    rules = one(render(), "ClusterRole", "-operator")["rules"]
    assert any(r["resources"] == ["persistentvolumeclaims/status"] and r["verbs"] == ["patch"] for r in rules)


@pytest.mark.parametrize("kube_version", ["1.26.0", "v1.30.4-eks-2f0e1a", "v1.31.2+k3s1", "1.35.0"])
def test_helm_template_needs_no_cluster(kube_version: str, tmp_path: Path) -> None:
    """GitOps tools render offline: no kubeconfig, no lookup; vendor version suffixes pass."""
    import os
    import subprocess

    from tests.realparts.kubeapi import test_binary

    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig"), "HOME": str(tmp_path)}
    argv = [str(test_binary("helm")), "template", "r", str(CHART), "--kube-version", kube_version]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "kind: CustomResourceDefinition" in result.stdout
    assert "lookup" not in "".join(p.read_text() for p in (CHART / "templates").iterdir())


def test_helm_template_refuses_a_kubernetes_older_than_the_chart_supports() -> None:
    result = helm("template", "r", str(CHART), "--kube-version", "1.25.9")
    assert result.returncode != 0 and ">=1.26.0-0" in result.stderr
