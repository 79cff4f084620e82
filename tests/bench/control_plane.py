"""Workload 8, the control plane: many RazorVolumes applied at once until all are Ready on a real
kube-apiserver with the real operator, and the latency of NodeStageVolume + NodePublishVolume
through the real CSI node plugin (each stage creates the volume's mount pod and hands it its FUSE
session; each unstage deletes it).

It runs the whole stack of `make dev-up` (tests.realparts.dev_cluster: the real node with the chart
installed) on a private root and tears it down afterwards; stage and publish are called on the
node plugin's CSI socket as the kubelet would; only RazorFS has this workload, so it has no peers and no alternation."""

from __future__ import annotations

import base64
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.realparts import dev_cluster, pidfiles
from tests.realparts.csiclient import CsiClient, VolumeRequest, staging_path

READY_TIMEOUT_S = 600.0
GROUP, VERSION, PLURAL = "razorfs.io", "v1alpha1", "razorvolumes"


def razorvolume(name: str, namespace: str, dev: dev_cluster.DevState) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RazorVolume",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "s3": {"endpoint": dev.s3_endpoint, "bucket": dev.bucket, "prefix": f"bench/{name}",
                   "region": dev.region, "forcePathStyle": True,
                   "secretRef": {"name": dev_cluster.SECRET_NAME}},
            "accessModes": ["ReadWriteMany"],
            "reclaimPolicy": "Delete",
            "cache": {"mode": "writeback", "size": "1Gi", "metadataTTL": "1s"},
        },
    }  # fmt: skip


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: with few samples p99 is the slowest one, never an interpolation."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def _ready_count(custom: Any, namespace: str) -> int:
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return sum(1 for rv in listed["items"] if (rv.get("status") or {}).get("phase") == "Ready")


def _apply_and_wait_ready(api: Any, dev: dev_cluster.DevState, namespace: str, count: int) -> float:
    from kubernetes import client

    custom = client.CustomObjectsApi(api)
    start = time.monotonic()
    for i in range(count):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, razorvolume(f"rv-{i:03d}", namespace, dev)
        )
    while _ready_count(custom, namespace) < count:
        if time.monotonic() - start > READY_TIMEOUT_S:
            raise TimeoutError(f"only {_ready_count(custom, namespace)}/{count} RazorVolumes Ready")
        time.sleep(0.25)
    return time.monotonic() - start


def _stage_publish_latencies(api: Any, dev: dev_cluster.DevState, namespace: str, samples: int) -> list[float]:
    """Stage + publish, as kubelet would, for `samples` of the volumes; undone (untimed) after each."""
    from kubernetes import client

    core: Any = client.CoreV1Api(api)  # read as untyped: PV fields are Optional all the way down
    csi = CsiClient(dev.csi_endpoint)
    kubelet_dir = Path(dev.kubelet_dir)
    latencies: list[float] = []
    try:
        for i in range(samples):
            claim = core.read_namespaced_persistent_volume_claim(f"rv-{i:03d}", namespace)
            pv = core.read_persistent_volume(claim.spec.volume_name)
            ref = pv.spec.csi.node_stage_secret_ref
            secret = core.read_namespaced_secret(ref.name, ref.namespace) if ref else None
            secrets = {k: base64.b64decode(v).decode() for k, v in ((secret.data if secret else None) or {}).items()}
            request = VolumeRequest(
                volume_handle=pv.spec.csi.volume_handle,
                access_modes=list(pv.spec.access_modes or []),
                volume_context=dict(pv.spec.csi.volume_attributes or {}),
                stage_secrets=secrets,
            )
            staging = staging_path(kubelet_dir, pv.spec.csi.driver, request.volume_handle)
            # Not under `pods/`: kubelet removes the empty volume directories of pods it does not
            # know (its orphaned-pod clean-up, every few seconds), which raced the publish here.
            target = kubelet_dir / "razorfs-bench-targets" / uuid.uuid4().hex[:8] / pv.metadata.name / "mount"
            staging.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            pod_context = {"csi.storage.k8s.io/pod.namespace": namespace, "csi.storage.k8s.io/pod.name": "bench"}
            start = time.monotonic()
            csi.stage(request, staging)
            csi.publish(request, staging, target, pod_context)
            latencies.append(time.monotonic() - start)
            csi.unpublish(request.volume_handle, target)
            csi.unstage(request.volume_handle, staging)
    finally:
        csi.close()
    return latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_of_parts(root: Path) -> dict[str, float]:
    recorded = {**pidfiles.recorded(root), **pidfiles.recorded(root / "node")}
    return {name: _cpu_seconds(pid) for name, (pid, _) in recorded.items()}


def _log_cpu(what: str, before: dict[str, float], after: dict[str, float]) -> None:
    """CPU seconds each part spent: on a shared machine a steadier figure than wall time."""
    spent = ", ".join(f"{name} {after[name] - before.get(name, 0.0):.1f}" for name in sorted(after))
    print(f"[control_plane] CPU seconds while {what}: {spent}", file=sys.stderr, flush=True)


def measure_control_plane(workdir: Path, volumes: int, stage_samples: int) -> dict[str, float]:
    from kubernetes import client, config

    root = workdir / "dev"
    try:
        dev = dev_cluster.up(root, s3_port=None)
        api: Any = config.new_client_from_config(config_file=dev.kubeconfig)  # type: ignore[no-untyped-call]
        core: Any = client.CoreV1Api(api)
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        secret = dev_cluster.credentials_secret(namespace, dev.access_key, dev.secret_key)
        core.create_namespaced_secret(namespace, secret)
        cpu_before = _cpu_of_parts(root)
        ready_s = _apply_and_wait_ready(api, dev, namespace, volumes)
        cpu_ready = _cpu_of_parts(root)
        _log_cpu(f"{volumes} RazorVolumes became Ready", cpu_before, cpu_ready)
        latencies = _stage_publish_latencies(api, dev, namespace, stage_samples)
        _log_cpu(f"staging and publishing {stage_samples} times", cpu_ready, _cpu_of_parts(root))
    finally:
        dev_cluster.down(root)
    return {
        "cp_ready_all_s": ready_s,
        "csi_stage_publish_p50_s": statistics.median(latencies),
        "csi_stage_publish_p99_s": percentile(latencies, 0.99),
    }
