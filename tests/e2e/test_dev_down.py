"""`make dev-down` while a pod still holds a RazorFS mount with fresh writes: every process stops,
every mount goes, nothing has to be forced, and the pod's data is in S3 (the harness unstages, which
flushes, before anything else stops). Runs on a cluster of its own (module fixture) since it ends it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.kubeapply import Applier

from .test_volume_flow import NUMBERS_50K, mounts_in, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(600)]


def test_dev_down_with_a_mounted_volume_flushes_stops_everything_and_unmounts(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    prefix = f"down-{uuid.uuid4().hex[:8]}"
    applier.apply({
        "apiVersion": "razorfs.io/v1alpha1",
        "kind": "RazorVolume",
        "metadata": {"name": "held", "namespace": namespace},
        "spec": {
            "s3": {"endpoint": dev.s3_endpoint, "bucket": dev.bucket, "prefix": prefix, "region": dev.region,
                   "secretRef": {"name": dev_cluster.SECRET_NAME}},
            "reclaimPolicy": "Retain",
        },
    })
    applier.apply({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "holder", "namespace": namespace},
        "spec": {
            "containers": [{
                "name": "holder", "image": "busybox:1.36",
                "command": ["sh", "-c", "seq 1 50000 > /data/late.txt && touch /data/written && exec sleep 600"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "held"}}],
        },
    })
    wait_for("pod running", lambda: core.read_namespaced_pod("holder", namespace).status.phase == "Running")
    target = Path(next(m for m in mounts_in(dev.kubelet_dir) if "/pods/" in m))
    wait_for("pod wrote its file", lambda: (target / "written").exists())
    root = Path(dev.root)

    forced = dev_cluster.down(root, stop_s3=False)

    assert forced == [], f"dev-down had to force: {forced}"
    assert not dev_cluster.is_up(root)
    assert mounts_in(dev.root) == []
    # Only the S3 server (kept for the check below) still runs; the fixture's down() stops it.
    others = [pid for pid in dev_cluster.processes_under(root)
              if b"weed" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert others == []
    body = s3.get_object(Bucket=dev.bucket, Key=f"{prefix}/late.txt")["Body"].read()
    assert body == NUMBERS_50K, "the pod's writes were flushed to S3 before the mount went away"
