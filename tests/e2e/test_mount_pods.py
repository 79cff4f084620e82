"""Mount pods on the real node: every staged volume's daemon runs in a pod of its own, so the node
plugin can be restarted, upgraded and killed under a workload that writes all the while, without
one failed system call; a daemon killed with SIGKILL is replaced and nothing acknowledged is lost;
no mount pod outlives its volume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import urllib.request
import uuid
from typing import Any

import pytest

from tests.realparts import dev_cluster
from tests.realparts.cluster import chart

from .workloads import daemon_pid, exec_in, keys_under, pod, razorvolume, running, wait_for, wait_unstaged

pytestmark = [pytest.mark.kube, pytest.mark.fuse, pytest.mark.s3, pytest.mark.timeout(900)]

MOUNT_POD_SELECTOR = "app.kubernetes.io/name=razorfs-mount"
NODE_SELECTOR = "app.kubernetes.io/component=node"

# A new file every 100 ms (written, then read back and compared) plus a line appended to a file
# held open from start to end; every failed step is written down outside the volume.
WRITER = r"""
head -c 314572800 /dev/urandom > /data/big.bin && md5sum /data/big.bin | cut -d' ' -f1 > /tmp/big.md5
exec 3>>/data/appended.txt
n=0
while [ ! -e /tmp/stop ]; do
  n=$((n+1))
  echo "file $n" > /data/f-$n.txt 2>>/tmp/errors || echo "write $n failed" >> /tmp/errors
  [ "$(cat /data/f-$n.txt 2>>/tmp/errors)" = "file $n" ] || echo "read-back $n differs" >> /tmp/errors
  echo "line $n" >&3 2>>/tmp/errors || echo "append $n failed" >> /tmp/errors
  echo $n > /tmp/count
  sleep 0.1
done
exec 3>&-
echo finished > /tmp/finished
exec sleep 600
"""


def bound_volume(dev: dev_cluster.DevState, core: Any, namespace: str, name: str, prefix: str,
                 **spec: Any) -> None:
    """A RazorVolume (with extra spec fields) whose claim is Bound."""
    volume = razorvolume(name, namespace, dev, prefix)
    volume["spec"].update(spec)
    dev_cluster.apply_objects(dev, volume)
    wait_for(f"claim {name} bound",
             lambda: core.read_namespaced_persistent_volume_claim(name, namespace).status.phase == "Bound")


def mount_pods(core: Any) -> list[Any]:
    return list(core.list_namespaced_pod(dev_cluster.SYSTEM_NAMESPACE, label_selector=MOUNT_POD_SELECTOR).items)


def written(dev: dev_cluster.DevState, namespace: str) -> int:
    return int(exec_in(dev, namespace, "writer", "cat /tmp/count 2>/dev/null || echo 0").strip() or 0)


def errors(dev: dev_cluster.DevState, namespace: str) -> str:
    return exec_in(dev, namespace, "writer", "cat /tmp/errors 2>/dev/null || true")


def node_plugin_ready(dev: dev_cluster.DevState) -> bool:
    out = dev.node.kubectl("rollout", "status", "daemonset/razorfs-node", "-n", dev_cluster.SYSTEM_NAMESPACE,
                           "--timeout=5s", check=False)
    if "successfully rolled out" not in out:
        return False
    pods = json.loads(dev.node.kubectl("get", "pods", "-n", dev_cluster.SYSTEM_NAMESPACE, "-l", NODE_SELECTOR,
                                       "-o", "json"))["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return len(live) == 1 and all(c.get("ready") for c in live[0]["status"].get("containerStatuses", []))


def keeps_writing(dev: dev_cluster.DevState, namespace: str, step: str) -> None:
    """The writer got further after `step`, and nothing failed."""
    before = written(dev, namespace)
    wait_for(f"the writer goes on after {step}", lambda: written(dev, namespace) >= before + 10, timeout_s=60)
    assert errors(dev, namespace) == "", f"system calls failed around {step}: {errors(dev, namespace)}"


def plugin_container_id(dev: dev_cluster.DevState) -> str:
    ids = dev.node.crictl("ps", "-q", "--label", "io.kubernetes.container.name=node",
                          "--label", f"io.kubernetes.pod.namespace={dev_cluster.SYSTEM_NAMESPACE}").split()
    assert len(ids) == 1, ids
    return ids[0]


def test_a_volume_keeps_serving_through_plugin_restart_upgrade_and_crash(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    prefix = f"mountpods-{uuid.uuid4().hex[:8]}"
    # A daemon that writes a 300 MiB file stays within a 320 MiB limit (its cache is on disk).
    bound_volume(dev, core, namespace, "kept", prefix, mountPod={"resources": {"limits": {"memory": "320Mi"}}})
    # No HostToContainer propagation: the workload's mount itself must never break.
    dev_cluster.apply_objects(dev, pod("writer", namespace, dev.image, WRITER, "kept"))
    running(core, namespace, "writer")
    (mount_pod,) = wait_for("one mount pod", lambda: len(mount_pods(core)) == 1 and mount_pods(core))
    assert mount_pod.spec.node_name == dev.node.node_name
    assert not mount_pod.metadata.owner_references, "owned by nobody: a DaemonSet rollout leaves it alone"
    container = mount_pod.spec.containers[0]
    assert container.security_context.privileged is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert mount_pod.spec.security_context.run_as_non_root is True
    assert not any(e.name.startswith("AWS_") for e in container.env or []), "credentials never in a pod spec"
    assert container.resources.limits == {"memory": "320Mi"}, "the RazorVolume's spec.mountPod applies"
    keeps_writing(dev, namespace, "the start")
    # Its daemon's log is the pod's log, and its metrics port answers on the pod's address.
    pod_log = dev.node.kubectl("logs", "-n", dev_cluster.SYSTEM_NAMESPACE, mount_pod.metadata.name)
    assert "mounted s3://" in pod_log
    fresh = core.read_namespaced_pod(mount_pod.metadata.name, dev_cluster.SYSTEM_NAMESPACE)
    with urllib.request.urlopen(f"http://{fresh.status.pod_ip}:9813/metrics", timeout=10) as reply:
        assert b"razorfs_" in reply.read()

    ns = dev_cluster.SYSTEM_NAMESPACE
    dev.node.kubectl("rollout", "restart", "daemonset/razorfs-node", "-n", ns)
    wait_for("node plugin rolled out", lambda: node_plugin_ready(dev), timeout_s=240)
    keeps_writing(dev, namespace, "kubectl rollout restart of the node plugin")

    # `helm upgrade` to another tag of the same image: the plugin's pod is replaced.
    repository, tag = dev.image.rsplit(":", 1)
    dev.node.tag_image(dev.image, f"{repository}:{tag}-upgraded")
    dev.helm().run("upgrade", chart.RELEASE, str(chart.CHART), "--namespace", ns, "--reuse-values",
                   "--set", f"image.tag={tag}-upgraded", "--wait", "--timeout", "5m")
    wait_for("upgraded node plugin rolled out", lambda: node_plugin_ready(dev) and f"{tag}-upgraded" in json.dumps(
        core.list_namespaced_pod(ns, label_selector=NODE_SELECTOR).to_dict()["items"][0]["spec"]["containers"][0]),
        timeout_s=240)
    keeps_writing(dev, namespace, "helm upgrade of the node plugin's image")

    killed = plugin_container_id(dev)
    dev.node.crictl("stop", "--timeout", "0", killed)
    wait_for("node plugin container back", lambda: plugin_container_id(dev) != killed and node_plugin_ready(dev),
             timeout_s=180)
    keeps_writing(dev, namespace, "the node plugin's container killed through crictl")

    (still,) = mount_pods(core)
    assert still.metadata.uid == mount_pod.metadata.uid, "the same mount pod served throughout"
    assert still.status.container_statuses[0].restart_count == 0, "never restarted (no OOM kill either)"

    exec_in(dev, namespace, "writer", "touch /tmp/stop")
    wait_for("writer finished", lambda: exec_in(dev, namespace, "writer", "cat /tmp/finished", check=False))
    total = written(dev, namespace)
    assert errors(dev, namespace) == ""
    big_md5 = exec_in(dev, namespace, "writer", "cat /tmp/big.md5").strip()
    core.delete_namespaced_pod("writer", namespace)
    wait_unstaged(dev)
    wait_for("no mount pod left", lambda: not mount_pods(core))

    keys = keys_under(s3, dev.bucket, prefix + "/")
    assert set(keys) == {f"{prefix}/f-{n}.txt" for n in range(1, total + 1)} | {f"{prefix}/{name}" for name in (
        "appended.txt", "big.bin")}
    for n in (1, total // 2, total):
        body = s3.get_object(Bucket=dev.bucket, Key=f"{prefix}/f-{n}.txt")["Body"].read()
        assert body == f"file {n}\n".encode()
    appended = s3.get_object(Bucket=dev.bucket, Key=f"{prefix}/appended.txt")["Body"].read().decode()
    assert appended == "".join(f"line {n}\n" for n in range(1, total + 1))
    big = hashlib.md5(usedforsecurity=False)
    for chunk in s3.get_object(Bucket=dev.bucket, Key=f"{prefix}/big.bin")["Body"].iter_chunks(1 << 20):
        big.update(chunk)
    assert big.hexdigest() == big_md5


def test_a_mount_daemon_killed_with_sigkill_is_replaced_and_loses_nothing_acknowledged(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    prefix = f"killed-{uuid.uuid4().hex[:8]}"
    bound_volume(dev, core, namespace, "victim", prefix)
    # HostToContainer: the new session is mounted over the dead one, and must reach the container.
    # Descriptors open across the kill: 3 written to and never closed, 4 open for reading.
    script = ("echo acknowledged > /data/closed.txt && exec 3>/data/open.txt && echo before >&3 && "
              "exec 4</data/closed.txt && touch /tmp/ready && while [ ! -e /tmp/go ]; do sleep 0.1; done && "
              "(echo after >&3) 2>/tmp/write-fd-error; echo $? > /tmp/write-fd-status; "
              "(cat <&4) 2>/tmp/read-fd-error; echo $? > /tmp/read-fd-status; exec sleep 600")
    dev_cluster.apply_objects(dev, pod("holder", namespace, dev.image, script, "victim", host_to_container=True))
    running(core, namespace, "holder")
    wait_for("holder ready", lambda: exec_in(dev, namespace, "holder", "ls /tmp/ready", check=False))
    (mount_pod,) = mount_pods(core)

    os.kill(daemon_pid(dev, mount_pod.metadata.name), signal.SIGKILL)
    killed_at = time.monotonic()
    reopen = "cat /data/closed.txt && echo again > /data/new.txt"
    wait_for("new opens work again",
             lambda: exec_in(dev, namespace, "holder", reopen, check=False) == "acknowledged\n", timeout_s=60)
    recovered_s = time.monotonic() - killed_at
    # What a descriptor open at the moment of the kill gets (README: "When a mount daemon dies").
    exec_in(dev, namespace, "holder", "touch /tmp/go")
    read_status = wait_for("old descriptors used", lambda: exec_in(
        dev, namespace, "holder", "cat /tmp/read-fd-status", check=False).strip())
    write_status = exec_in(dev, namespace, "holder", "cat /tmp/write-fd-status").strip()
    write_error = exec_in(dev, namespace, "holder", "cat /tmp/write-fd-error").strip()
    read_error = exec_in(dev, namespace, "holder", "cat /tmp/read-fd-error").strip()
    unclosed = exec_in(dev, namespace, "holder", "cat /data/open.txt 2>&1; echo status $?").strip()
    print(f"\nmount daemon SIGKILL: new opens work again after {recovered_s:.1f}s; on descriptors open "
          f"before the kill a write exits {write_status} ({write_error!r}), a read exits {read_status} "
          f"({read_error!r}); the file written and never closed now reads {unclosed!r}")
    assert write_status != "0" and "I/O error" in write_error, "a descriptor of the dead session fails with EIO"
    assert read_status != "0" and "Transport endpoint is not connected" in read_error
    told = wait_for("a MountRecovered event on the workload pod", lambda: [
        e for e in core.list_namespaced_event(namespace, field_selector="involvedObject.name=holder").items
        if e.reason == "MountRecovered"])
    assert "open them again" in told[0].message
    (replaced,) = mount_pods(core)
    assert replaced.metadata.uid == mount_pod.metadata.uid, "kubelet restarted the daemon in its pod"
    assert replaced.status.container_statuses[0].restart_count == 1

    core.delete_namespaced_pod("holder", namespace)
    wait_unstaged(dev)
    wait_for("no mount pod left", lambda: not mount_pods(core))
    assert s3.get_object(Bucket=dev.bucket, Key=f"{prefix}/closed.txt")["Body"].read() == b"acknowledged\n"
    assert s3.get_object(Bucket=dev.bucket, Key=f"{prefix}/new.txt")["Body"].read() == b"again\n"
    left = keys_under(s3, dev.bucket, prefix + "/").get(f"{prefix}/open.txt")
    print(f"the never-closed file in S3 after unstage: {left} bytes")


def group_pod(name: str, namespace: str, image: str, group: int, claim: str) -> dict[str, Any]:
    """A pod running as user and group `group` with fsGroup `group`; it writes one file."""
    manifest = pod(name, namespace, image, f"echo {name} > /data/{name}.txt && exec sleep 600", claim)
    manifest["spec"]["securityContext"] = {"runAsUser": group, "runAsGroup": group, "fsGroup": group}
    return manifest


def test_pods_with_different_fsgroups_each_see_their_own_group_and_one_group_shares_a_mount_pod(
    dev: dev_cluster.DevState, api: Any, namespace: str, s3: Any
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    prefix = f"groups-{uuid.uuid4().hex[:8]}"
    # Group-writable, so each fsGroup's members may create files in the volume's root.
    bound_volume(dev, core, namespace, "shared", prefix, mountOptions={"dirMode": "0775", "fileMode": "0664"})
    dev_cluster.apply_objects(dev, group_pod("first", namespace, dev.image, 1000, "shared"))
    running(core, namespace, "first")
    dev_cluster.apply_objects(dev, group_pod("other", namespace, dev.image, 2000, "shared"),
                              group_pod("third", namespace, dev.image, 1000, "shared"))
    running(core, namespace, "other")
    running(core, namespace, "third")

    def stat(pod_name: str, path: str) -> str:
        return exec_in(dev, namespace, pod_name, f"stat -c '%u:%g' {path}").strip()

    wait_for("each pod wrote its file", lambda: all(
        exec_in(dev, namespace, p, f"test -s /data/{p}.txt && echo yes", check=False).strip() == "yes"
        for p in ("first", "other", "third")))
    assert stat("first", "/data") == "0:1000"
    assert stat("other", "/data") == "0:2000", "the second group sees its own, never the first pod's"
    assert stat("third", "/data") == "0:1000"
    assert stat("first", "/data/first.txt") == "1000:1000"
    assert stat("other", "/data/other.txt") == "2000:2000"
    assert stat("first", "/data/third.txt") == "1000:1000", "pods of one fsGroup share one mount"
    assert len(mount_pods(core)) == 2, "one mount pod per fsGroup"

    for name in ("first", "other", "third"):
        core.delete_namespaced_pod(name, namespace)
    wait_unstaged(dev)
    wait_for("no mount pod left", lambda: not mount_pods(core))
    assert set(keys_under(s3, dev.bucket, prefix + "/")) == {f"{prefix}/{p}.txt" for p in ("first", "other", "third")}
