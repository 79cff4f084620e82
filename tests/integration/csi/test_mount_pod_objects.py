"""Mount pod objects on a real kube-apiserver (no kubelet: the pods never run): the plugin's sweep
removes the pods of mounts it no longer records, on its own node only, and only after the grace."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from razorfs.csi.mount_pods import MountPods, MountPodTemplate, pod_name
from razorfs.csi.state_store import VolumeRecord

pytestmark = [pytest.mark.kube]

CACHE_ROOT = Path("/var/lib/razorfs/cache")


def pods_on(core: Any, namespace: str, node: str, grace_s: float = 0.0) -> MountPods:
    template = MountPodTemplate(namespace=namespace, node_name=node, image="example/razorfs:1",
                                host_cache_root=CACHE_ROOT, cache_root=CACHE_ROOT)  # fmt: skip
    return MountPods(template, core, orphan_grace_s=grace_s)


def record(key: str) -> VolumeRecord:
    return VolumeRecord(volume_id=f"vol-{key}", staging_path="/staging", cache_dir=str(CACHE_ROOT / key / "cache"),
                        argv=["mount", "s3://b", "/staging"])  # fmt: skip


def live_pod_names(core: Any, namespace: str) -> set[str]:
    pods = core.list_namespaced_pod(namespace).items
    return {p.metadata.name for p in pods if p.metadata.deletion_timestamp is None}


def test_the_sweep_removes_only_this_nodes_pods_of_mounts_no_longer_recorded(
    kube_api_client: Any, kube_namespace: str
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    node_a, node_b = pods_on(core, kube_namespace, "node-a"), pods_on(core, kube_namespace, "node-b")
    for host, key in ((node_a, "v-kept"), (node_a, "v-orphan"), (node_b, "v-orphan")):
        host._create(record(key))
    assert len(live_pod_names(core, kube_namespace)) == 3

    asyncio.run(pods_on(core, kube_namespace, "node-a", grace_s=60.0).sweep({"v-kept"}))
    assert len(live_pod_names(core, kube_namespace)) == 3, "a pod younger than the grace may belong to a stage"

    asyncio.run(node_a.sweep({"v-kept"}))
    assert live_pod_names(core, kube_namespace) == {
        pod_name("node-a", "v-kept"),
        pod_name("node-b", "v-orphan"),
    }, "node-a's orphan goes; node-b's pods are node-b's business"


def test_a_created_pod_is_found_again_by_name_and_not_created_twice(kube_api_client: Any, kube_namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api_client)
    host = pods_on(core, kube_namespace, "node-a")
    host._create(record("v-once"))
    host._create(record("v-once"))  # a restarted plugin staging again: the existing pod is kept
    (pod,) = core.list_namespaced_pod(kube_namespace).items
    assert pod.metadata.name == pod_name("node-a", "v-once")
    assert pod.metadata.annotations["razorfs.io/volume-id"] == "vol-v-once"
    assert pod.spec.node_name == "node-a"
