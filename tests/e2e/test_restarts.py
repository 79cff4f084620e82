"""The operator and the node plugin restarted as pods (`kubectl delete pod`) while a workload pod
keeps its volume: what it wrote before and after reaches S3. (With mount pods the volume never stops
serving during the plugin's restart; test_mount_pods.py checks that call by call, this test the
plainer `kubectl delete pod` path and the operator's restart.)"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier

from .workloads import exec_in, gone, keys_under, pod, razorvolume, running, wait_for, wait_unstaged

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]


def replace_pod(core: Any, component: str) -> None:
    """Deletes the chart's pod of `component` and waits for its replacement to be Ready."""
    selector = f"app.kubernetes.io/component={component}"
    old = core.list_namespaced_pod(dev_cluster.SYSTEM_NAMESPACE, label_selector=selector).items[0]
    core.delete_namespaced_pod(old.metadata.name, dev_cluster.SYSTEM_NAMESPACE)

    def replacement_ready() -> bool:
        pods = core.list_namespaced_pod(dev_cluster.SYSTEM_NAMESPACE, label_selector=selector).items
        fresh = [p for p in pods if p.metadata.uid != old.metadata.uid and p.metadata.deletion_timestamp is None]
        return any(c.type == "Ready" and c.status == "True" for p in fresh for c in p.status.conditions or [])

    wait_for(f"a new {component} pod Ready", replacement_ready, timeout_s=180)
    wait_for(f"old {component} pod gone", lambda: gone(
        lambda: core.read_namespaced_pod(old.metadata.name, dev_cluster.SYSTEM_NAMESPACE)), timeout_s=180)


def test_workload_keeps_working_after_operator_and_node_plugin_pods_restart(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    prefix = f"restart-{uuid.uuid4().hex[:8]}"
    applier.apply(razorvolume("kept", namespace, dev, prefix))
    wait_for("claim bound", lambda: core.read_namespaced_persistent_volume_claim("kept", namespace)
             .status.phase == "Bound")
    applier.apply(pod("worker", namespace, dev.image, "exec sleep 600", "kept", host_to_container=True))
    running(core, namespace, "worker")
    exec_in(dev, namespace, "worker", "echo before > /data/before.txt")

    replace_pod(core, "operator")
    assert exec_in(dev, namespace, "worker", "cat /data/before.txt") == "before\n"
    replace_pod(core, "node")
    # The workload's next operations work again once the new plugin has re-bound the target.
    wait_for("workload writes again", lambda: exec_in(
        dev, namespace, "worker", "echo after > /data/after.txt && cat /data/before.txt", check=False) == "before\n",
        timeout_s=90)

    core.delete_namespaced_pod("worker", namespace)
    wait_unstaged(dev)
    keys = keys_under(s3, dev.bucket, prefix + "/")
    assert set(keys) == {f"{prefix}/before.txt", f"{prefix}/after.txt"}, keys
