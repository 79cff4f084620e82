"""The chart's NetworkPolicy enforced for real: kube-router's firewall runs on the local node
(tests/realparts/cluster/node.py). A pod in another namespace, and a pod in the release namespace
without the operator's labels, cannot open a TCP connection to the node plugin's NodeAdmin port, while
the node plugin's metrics port stays open to them; the operator still reaches NodeAdmin (a TCP
connect from its pod, and a RazorVolume's per-node status, which the operator gets over NodeAdmin).
With the policy deleted the same pod connects (the refusal is the policy's doing, not a closed
port); the policy is then put back as it was."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realparts import dev_cluster, pidfiles
from tests.realparts.kubeapply import Applier

from .workloads import gone, pod, razorvolume, running, wait_for, wait_unstaged

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]
CONNECT_TIMEOUT_S = 3
# Prints "<port> open|refused|timeout|error-<errno>" for each port of argv[2:] on host argv[1].
PROBE = f"""
import socket, sys
for port in sys.argv[2:]:
    try:
        socket.create_connection((sys.argv[1], int(port)), timeout={CONNECT_TIMEOUT_S}).close()
        outcome = "open"
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except OSError as exc:
        outcome = f"error-{{exc.errno}}"
    print(port, outcome)
"""
OPERATOR_LABELS = "app.kubernetes.io/component=operator"
NODE_LABELS = "app.kubernetes.io/component=node"


def probe_pod(name: str, namespace: str, image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                            "command": ["sleep", "600"]}],
        },
    }


def connect(dev: dev_cluster.DevState, namespace: str, pod_name: str, host: str, *ports: int,
            container: str | None = None) -> dict[int, str]:
    """What a TCP connect from inside the pod to host:port gives, per port."""
    args = ["exec", "-n", namespace, pod_name, *(["-c", container] if container else []), "--",
            "python3", "-c", PROBE, host, *map(str, ports)]
    out = dev.node.kubectl(*args)
    return {int(port): outcome for port, outcome in (line.split() for line in out.splitlines())}


def policy_rule_programmed(policy: str) -> bool:
    """kube-router has a rule sending the node plugin's traffic through the policy's chain."""
    dump = subprocess.run(["iptables-legacy-save", "-t", "filter"], capture_output=True, text=True,
                          check=True).stdout
    return f'"run through nw policy {policy}"' in dump


@pytest.fixture
def impostor(dev: dev_cluster.DevState, api: Any) -> Iterator[str]:
    """A pod in the release namespace with the chart's labels but another component's."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    name = f"impostor-{uuid.uuid4().hex[:6]}"
    labels = {"app.kubernetes.io/name": "razorfs", "app.kubernetes.io/instance": "razorfs",
              "app.kubernetes.io/component": "probe"}
    Applier(api, field_manager="razorfs-e2e").apply(probe_pod(name, dev_cluster.SYSTEM_NAMESPACE, dev.image, labels))
    yield name
    core.delete_namespaced_pod(name, dev_cluster.SYSTEM_NAMESPACE, grace_period_seconds=0)
    wait_for(f"pod {name} gone", lambda: gone(lambda: core.read_namespaced_pod(name, dev_cluster.SYSTEM_NAMESPACE)))


def test_only_the_operator_reaches_the_node_admin_port(
    dev: dev_cluster.DevState, api: Any, namespace: str, impostor: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    networking: Any = client.NetworkingV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    system = dev_cluster.SYSTEM_NAMESPACE

    # Without kube-router nothing enforces NetworkPolicy here: that is a failure, never a skip.
    router = pidfiles.recorded(Path(dev.root) / "node").get("kube-router")
    assert router is not None and pidfiles.alive(*router), (
        "kube-router is not running on the local node, so NetworkPolicy is not enforced "
        "(tests/realparts/cluster/node.py starts it; `make test-bins` builds it)")
    policies = networking.list_namespaced_network_policy(system, label_selector=NODE_LABELS).items
    assert len(policies) == 1, [p.metadata.name for p in policies]
    policy = policies[0].metadata.name
    (node_pod,) = core.list_namespaced_pod(system, label_selector=NODE_LABELS).items
    assert not node_pod.spec.host_network, "policies do not apply to a host-network node plugin"
    ports = {p.name: p.container_port for c in node_pod.spec.containers if c.name == "node" for p in c.ports}
    admin, metrics = ports["node-admin"], ports["metrics"]
    node_ip = node_pod.status.pod_ip
    wait_for(f"kube-router programs the NetworkPolicy {policy}", lambda: policy_rule_programmed(policy), 60)

    applier = Applier(api, field_manager="razorfs-e2e")
    applier.apply(probe_pod("outsider", namespace, dev.image))
    running(core, namespace, "outsider")
    running(core, system, impostor)

    for where, name in ((namespace, "outsider"), (system, impostor)):
        got = connect(dev, where, name, node_ip, admin, metrics)
        assert got[admin] in ("refused", "timeout"), f"{where}/{name} reached NodeAdmin at {node_ip}:{admin}: {got}"
        assert got[metrics] == "open", f"{where}/{name} did not reach the metrics port {node_ip}:{metrics}: {got}"

    (operator_pod,) = core.list_namespaced_pod(system, label_selector=OPERATOR_LABELS).items
    got = connect(dev, system, operator_pod.metadata.name, node_ip, admin, container="operator")
    assert got[admin] == "open", f"the operator's pod did not reach NodeAdmin at {node_ip}:{admin}: {got}"

    # The operator's own NodeAdmin calls: a mounted volume's per-node state in its status.
    prefix = f"netpol-{uuid.uuid4().hex[:8]}"
    applier.apply(razorvolume("guarded", namespace, dev, prefix))
    wait_for("claim bound", lambda: core.read_namespaced_persistent_volume_claim("guarded", namespace)
             .status.phase == "Bound")
    applier.apply(pod("holder", namespace, dev.image, "exec sleep 600", "guarded"))
    running(core, namespace, "holder")

    def node_states() -> list[str]:
        rv = custom.get_namespaced_custom_object("razorfs.io", "v1alpha1", namespace, "razorvolumes", "guarded")
        return [n["state"] for n in (rv.get("status") or {}).get("nodes") or [] if n["name"] == dev_cluster.NODE_NAME]

    wait_for("the operator reports the node's mount (over NodeAdmin)", lambda: node_states() == ["Mounted"])
    core.delete_namespaced_pod("holder", namespace)
    wait_unstaged(dev)

    # Control: without the policy the outsider reaches NodeAdmin; then the policy is put back.
    saved = api.sanitize_for_serialization(networking.read_namespaced_network_policy(policy, system))
    saved["metadata"] = {k: v for k, v in saved["metadata"].items()
                         if k in ("name", "namespace", "labels", "annotations")}
    networking.delete_namespaced_network_policy(policy, system)
    try:
        wait_for("kube-router drops the policy's rules", lambda: not policy_rule_programmed(policy), 60)
        got = connect(dev, namespace, "outsider", node_ip, admin)
        assert got[admin] == "open", f"without the policy NodeAdmin should be reachable: {got}"
    finally:
        networking.create_namespaced_network_policy(system, saved)
    wait_for(f"kube-router programs the NetworkPolicy {policy} again", lambda: policy_rule_programmed(policy), 60)
    got = connect(dev, namespace, "outsider", node_ip, admin)
    assert got[admin] in ("refused", "timeout"), f"the restored policy is not enforced: {got}"
