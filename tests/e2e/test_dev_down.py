"""`make dev-down` while a pod still holds a RazorFS mount with fresh writes: the pod is deleted
first (the kubelet unstages, which flushes), nothing has to be forced, and the machine is left as
found: no process, mount, interface, iptables rule, cgroup or changed sysctl. Ends the shared
cluster, so it runs last."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.cluster import node
from tests.realparts.cluster.host_state import HostState
from tests.realparts.kubeapply import Applier
from tests.realparts.s3server import start_seaweedfs

from .workloads import exec_in, pod, razorvolume, running

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.ends_cluster,
              pytest.mark.timeout(600)]
NUMBERS_50K = "".join(f"{i}\n" for i in range(1, 50_001)).encode()


def test_dev_down_with_a_mounted_volume_flushes_and_leaves_the_machine_as_found(
    dev: dev_cluster.DevState, api: Any, namespace: str, host_before: HostState
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    applier = Applier(api, field_manager="razorfs-e2e")
    prefix = f"down-{uuid.uuid4().hex[:8]}"
    applier.apply(razorvolume("held", namespace, dev, prefix, reclaim="Retain"))
    applier.apply(pod("holder", namespace, dev.image,
                      "seq 1 50000 > /data/late.txt && touch /data/written && exec sleep 600", "held"))
    running(core, namespace, "holder")
    exec_in(dev, namespace, "holder", "while [ ! -e /data/written ]; do sleep 0.2; done")
    root = Path(dev.root)

    forced = dev_cluster.down(root)

    assert forced == [], f"dev-down had to force: {forced}"
    assert not dev_cluster.is_up(root)
    left = node.leftovers(root / "node", host_before) + [f"pid {p}" for p in node.processes_under(root)]
    assert left == [], left
    # The bridge address is gone with the node: the S3 server's store is read again on loopback.
    reopened = start_seaweedfs(root / "s3")
    try:
        body = reopened.client().get_object(Bucket=dev.bucket, Key=f"{prefix}/late.txt")["Body"].read()
    finally:
        reopened.stop()
    assert body == NUMBERS_50K, "the pod's writes were flushed to S3 before the mount went away"
