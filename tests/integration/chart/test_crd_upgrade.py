"""`helm upgrade` upgrades the RazorVolume CRD: installed from this chart, then upgraded to a copy
whose CRD has a new field, the new field is accepted and kept (before the upgrade the API server
prunes it); `helm uninstall` leaves the CRD and the RazorVolumes in place (resource-policy keep)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.realparts.kubeapi import ControlPlane, start_control_plane
from tests.realparts.processes import RealPartMissing

from .helm import CHART, helm

pytestmark = [pytest.mark.kube, pytest.mark.timeout(300)]

GROUP, VERSION, PLURAL = "razorfs.io", "v1alpha1", "razorvolumes"
NAMESPACE = "razorfs-system"
NEW_FIELD = {"type": "string", "maxLength": 64, "description": "A field only the next chart version has."}


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    """A control plane of its own: the release's cluster-scoped objects (CRD, ClusterRoles, CSIDriver)
    must not meet the other suites' copies."""
    try:
        control_plane = start_control_plane(tmp_path / "kube")
    except RealPartMissing as exc:
        pytest.fail(f"real part missing: {exc}", pytrace=False)
    try:
        yield control_plane
    finally:
        control_plane.stop()


def next_chart_version(tmp_path: Path) -> Path:
    """A copy of the chart, version bumped, whose CRD has spec.newField."""
    chart = tmp_path / "razorfs-next"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "0.1.1-next"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    crd_file = chart / "files" / "razorvolumes-crd.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["newField"] = NEW_FIELD
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def run_helm(plane: ControlPlane, *args: str) -> str:
    result = helm(*args, "--kubeconfig", str(plane.kubeconfig), "--namespace", NAMESPACE)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def razorvolume(name: str) -> dict[str, Any]:
    spec = {"s3": {"endpoint": "http://s3.example.test", "bucket": "bucket-one", "secretRef": {"name": "creds"}}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RazorVolume",
        "metadata": {"name": name},
        "spec": {**spec, "newField": "kept"},
    }


def create_until_served(objects: Any, body: dict[str, Any], want_field: bool) -> dict[str, Any]:
    """Creates the RazorVolume once the served schema is the one expected (an upgraded CRD is
    served a moment after the API server stores it)."""
    deadline = time.monotonic() + 30
    name = body["metadata"]["name"]
    while True:
        created: dict[str, Any] = objects.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
        if ("newField" in created["spec"]) == want_field or time.monotonic() > deadline:
            return created
        objects.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
        time.sleep(0.5)


def test_helm_upgrade_brings_a_new_crd_field_and_uninstall_keeps_the_crd(plane: ControlPlane, tmp_path: Path) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
    objects: Any = client.CustomObjectsApi(api)
    extensions: Any = client.ApiextensionsV1Api(api)

    run_helm(plane, "install", "razorfs", str(CHART), "--create-namespace")
    before = create_until_served(objects, razorvolume("before"), want_field=False)
    assert "newField" not in before["spec"], "the installed CRD has no newField: the API server prunes it"

    run_helm(plane, "upgrade", "razorfs", str(next_chart_version(tmp_path)))
    crd = extensions.read_custom_resource_definition("razorvolumes.razorfs.io")
    assert "newField" in crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties
    after = create_until_served(objects, razorvolume("after"), want_field=True)
    assert after["spec"]["newField"] == "kept"
    read_back = objects.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "after")
    assert read_back["spec"]["newField"] == "kept"

    uninstall = run_helm(plane, "uninstall", "razorfs")
    assert "razorvolumes.razorfs.io" in uninstall  # helm names the resource it kept
    kept = extensions.read_custom_resource_definition("razorvolumes.razorfs.io")
    assert kept.metadata.annotations.get("helm.sh/resource-policy") == "keep"
    names = [
        o["metadata"]["name"] for o in objects.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"]
    ]
    assert sorted(names) == ["after", "before"]
