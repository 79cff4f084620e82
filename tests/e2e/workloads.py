"""Workload pods and waits for the e2e tests: pods run the project's own image (it has a shell and
coreutils; no registry is reachable) as root, with RazorFS claims mounted at /data."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.realparts import dev_cluster

T = TypeVar("T")
STEP_TIMEOUT_S = 120.0


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # not there yet in one of many ways; shown if we give up
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s (last error: {last!r})")


def pod(name: str, namespace: str, image: str, script: str, claim: str, *, read_only: bool = False,
        host_to_container: bool = False, restart: str = "Never") -> dict[str, Any]:
    mount: dict[str, Any] = {"name": "data", "mountPath": "/data", "readOnly": read_only}
    if host_to_container:
        # New mounts on the node (a re-bound target after a plugin restart) reach the container.
        mount["mountPropagation"] = "HostToContainer"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": restart,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script], "volumeMounts": [mount],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}],
        },
    }


def razorvolume(name: str, namespace: str, dev: dev_cluster.DevState, prefix: str,
                reclaim: str = "Delete") -> dict[str, Any]:
    return {
        "apiVersion": "razorfs.io/v1alpha1",
        "kind": "RazorVolume",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "s3": {"endpoint": dev.s3_endpoint, "bucket": dev.bucket, "prefix": prefix, "region": dev.region,
                   "forcePathStyle": True, "secretRef": {"name": dev_cluster.SECRET_NAME}},
            "accessModes": ["ReadWriteMany"],
            "reclaimPolicy": reclaim,
            "cache": {"mode": "writeback", "size": "1Gi", "metadataTTL": "1s"},
        },
    }


def phase(core: Any, namespace: str, name: str) -> str:
    return str(core.read_namespaced_pod(name, namespace).status.phase)


def finished(core: Any, namespace: str, name: str) -> str:
    """Waits until the pod ran to an end; returns Succeeded or Failed."""
    return wait_for(f"pod {namespace}/{name} finished",
                    lambda: (p := phase(core, namespace, name)) in ("Succeeded", "Failed") and p)


def running(core: Any, namespace: str, name: str) -> None:
    wait_for(f"pod {namespace}/{name} Running", lambda: phase(core, namespace, name) == "Running")


def gone(call: Callable[[], Any]) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def keys_under(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


def volume_mounts(dev: dev_cluster.DevState) -> list[str]:
    return dev_cluster.razorfs_mounts(dev.kubelet_dir)


def wait_unstaged(dev: dev_cluster.DevState, timeout_s: float = STEP_TIMEOUT_S) -> None:
    """Waits until the kubelet has unpublished and unstaged every RazorFS volume on the node."""
    deadline = time.monotonic() + timeout_s
    while volume_mounts(dev) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not volume_mounts(dev), f"still mounted after {timeout_s:.0f}s: {volume_mounts(dev)}"


def exec_in(dev: dev_cluster.DevState, namespace: str, name: str, script: str, check: bool = True) -> str:
    return dev.node.kubectl("exec", "-n", namespace, name, "--", "sh", "-c", script, check=check)


def daemon_pid(dev: dev_cluster.DevState, mount_pod_name: str) -> int:
    """The host PID of the mount daemon in a mount pod (its container's PID 1)."""
    (container,) = dev.node.crictl("ps", "-q", "--label", f"io.kubernetes.pod.name={mount_pod_name}").split()
    return int(json.loads(dev.node.crictl("inspect", container))["info"]["pid"])
