"""Volume settings on the real node, each either working or refused loudly: a StorageClass's
`mountOptions: [ro]` gives pods a read-only volume, an unknown option leaves the claim Pending with
an event naming it, a claim resized from 1Gi to 2Gi through the real csi-resizer shows 2Gi, a class
with a prefix template puts the claim under `<namespace>/<claim>/`, and a stage whose Secret lost its
keys fails with an event on the pod instead of falling back to other credentials."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier

from .workloads import exec_in, keys_under, pod, razorvolume, running, wait_for, wait_unstaged

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]


@pytest.fixture
def storage_classes(api: Any) -> Iterator[list[str]]:
    """Names of the classes a test creates; deleted afterwards."""
    from kubernetes import client

    created: list[str] = []
    yield created
    storage: Any = client.StorageV1Api(api)
    for name in created:
        storage.delete_storage_class(name)


def derived_class(api: Any, created: list[str], **changes: Any) -> str:
    """A StorageClass like the chart's, with `changes` (parameters merged, other fields replaced)."""
    from kubernetes import client

    storage: Any = client.StorageV1Api(api)
    base = storage.read_storage_class(dev_cluster.STORAGE_CLASS)
    name = f"razorfs-{uuid.uuid4().hex[:6]}"
    body: dict[str, Any] = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": base.provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,
        "parameters": {**base.parameters, **changes.pop("parameters", {})},
        **changes,
    }
    storage.create_storage_class(body)
    created.append(name)
    return name


def claim(name: str, namespace: str, storage_class: str, size: str = "1Gi") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "storageClassName": storage_class,
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": size}},
        },
    }


def bound(core: Any, namespace: str, name: str) -> Any:
    return wait_for(
        f"claim {name} bound",
        lambda: (c := core.read_namespaced_persistent_volume_claim(name, namespace)).status.phase == "Bound" and c,
    )


def events_for(core: Any, namespace: str, name: str) -> list[Any]:
    return list(core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items)


def test_storageclass_mount_option_ro_gives_pods_a_read_only_volume(
    dev: dev_cluster.DevState, api: Any, namespace: str, storage_classes: list[str]
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    read_only = derived_class(api, storage_classes, mountOptions=["ro"])
    applier.apply(claim("frozen", namespace, read_only))
    bound(core, namespace, "frozen")
    applier.apply(pod("looker", namespace, dev.image, "exec sleep 600", "frozen"))
    running(core, namespace, "looker")
    refused = exec_in(dev, namespace, "looker", "touch /data/x 2>&1; echo rc=$?", check=False)
    assert "Read-only file system" in refused and "rc=1" in refused, refused


def test_unknown_mount_option_leaves_the_claim_pending_with_an_event_naming_it(
    dev: dev_cluster.DevState, api: Any, namespace: str, storage_classes: list[str]
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    odd = derived_class(api, storage_classes, mountOptions=["no-such-option=1"])
    applier.apply(claim("odd", namespace, odd))
    failed = wait_for(
        "ProvisioningFailed event",
        lambda: [e for e in events_for(core, namespace, "odd") if e.reason == "ProvisioningFailed"],
    )
    assert "no-such-option" in failed[0].message, failed[0].message
    assert core.read_namespaced_persistent_volume_claim("odd", namespace).status.phase == "Pending"


def test_claim_resized_from_1gi_to_2gi_by_the_real_csi_resizer(
    dev: dev_cluster.DevState, api: Any, namespace: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    Applier(api, field_manager="razorfs-e2e").apply(claim("growing", namespace, dev_cluster.STORAGE_CLASS))
    assert bound(core, namespace, "growing").status.capacity["storage"] == "1Gi"
    core.patch_namespaced_persistent_volume_claim(
        "growing", namespace, {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    )
    wait_for(
        "claim capacity 2Gi",
        lambda: core.read_namespaced_persistent_volume_claim("growing", namespace).status.capacity["storage"] == "2Gi",
    )
    pv_name = core.read_namespaced_persistent_volume_claim("growing", namespace).spec.volume_name
    assert core.read_persistent_volume(pv_name).spec.capacity["storage"] == "2Gi"


def test_prefix_template_puts_a_claim_under_its_namespace_and_name(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any, storage_classes: list[str]
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    templated = derived_class(
        api,
        storage_classes,
        parameters={"prefix": "", "prefixTemplate": "${pvc.metadata.namespace}/${pvc.metadata.name}"},
    )
    applier.apply(claim("named", namespace, templated))
    pv = core.read_persistent_volume(bound(core, namespace, "named").spec.volume_name)
    assert pv.spec.csi.volume_attributes["prefix"].strip("/") == f"{namespace}/named"
    applier.apply(pod("writer", namespace, dev.image, "echo placed > /data/where.txt", "named", restart="Never"))
    wait_for("writer done", lambda: core.read_namespaced_pod("writer", namespace).status.phase == "Succeeded")
    wait_unstaged(dev)
    assert f"{namespace}/named/where.txt" in keys_under(s3, dev.bucket, f"{namespace}/named/")


def test_stage_with_an_emptied_secret_fails_with_an_event_and_no_fallback(
    dev: dev_cluster.DevState, api: Any, namespace: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    applier.apply(razorvolume("locked", namespace, dev, f"locked-{uuid.uuid4().hex[:8]}"))
    bound(core, namespace, "locked")
    # The namespace's Secret loses its keys after the PV exists: the next stage must not borrow
    # the node's or the pod's ambient credentials.
    core.replace_namespaced_secret(
        dev_cluster.SECRET_NAME,
        namespace,
        {"metadata": {"name": dev_cluster.SECRET_NAME}, "stringData": {"accessKeyID": "", "secretAccessKey": ""}},
    )
    applier.apply(pod("blocked", namespace, dev.image, "exec sleep 600", "locked"))
    failed = wait_for(
        "FailedMount event naming the missing key",
        lambda: [
            e
            for e in events_for(core, namespace, "blocked")
            if e.reason == "FailedMount" and "accessKeyID" in (e.message or "")
        ],
    )
    assert dev.secret_key not in failed[0].message
    assert core.read_namespaced_pod("blocked", namespace).status.phase == "Pending"


def test_unknown_mount_option_on_a_pv_leaves_the_pod_creating_with_an_event_naming_it(
    dev: dev_cluster.DevState, api: Any, namespace: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    applier.apply(razorvolume("flagged", namespace, dev, f"flagged-{uuid.uuid4().hex[:8]}"))
    pv_name = bound(core, namespace, "flagged").spec.volume_name
    core.patch_persistent_volume(pv_name, {"spec": {"mountOptions": ["no-such-option"]}})
    applier.apply(pod("stuck", namespace, dev.image, "exec sleep 600", "flagged"))
    failed = wait_for(
        "FailedMount event naming the option",
        lambda: [
            e
            for e in events_for(core, namespace, "stuck")
            if e.reason == "FailedMount" and "no-such-option" in (e.message or "")
        ],
    )
    assert "InvalidArgument" in failed[0].message or "invalid" in failed[0].message.lower(), failed[0].message
    status = core.read_namespaced_pod("stuck", namespace).status
    assert status.phase == "Pending"
    waiting = [c.state.waiting.reason for c in status.container_statuses or [] if c.state.waiting]
    assert waiting in ([], ["ContainerCreating"]), waiting
