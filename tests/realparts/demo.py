"""`make demo`: RazorFS end to end on this machine. Brings the dev cluster up (tests/realparts/
dev_cluster.py: a real Kubernetes node with the chart installed by helm), applies
examples/razorvolume.yaml, examples/pvc.yaml and examples/pod.yaml, and narrates: the RazorVolume
going Ready, the StorageClass claim provisioned by csi-provisioner, the pod writing files through the
FUSE mounts, the objects appearing in S3 with their metadata, the per-node cache figures in the
RazorVolume's status and the node plugin's log. Then it returns, leaving everything running to
explore (`make dev-down` stops it); `--down` stops it at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import dev_cluster
from .kubeapply import Applier, load_manifest_file

EXAMPLES = dev_cluster.REPO / "examples"
EXAMPLE_ENDPOINT = "http://10.88.0.1:8333"
T = TypeVar("T")


class DemoFailed(RuntimeError):
    """A step of the demo did not happen in time; the message says which and where to look."""


def say(text: str) -> None:
    print(text, flush=True)


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.5) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval_s)
    raise DemoFailed(f"{what}: not after {timeout_s:.0f}s")


def example_objects(name: str, endpoint: str) -> list[dict[str, Any]]:
    """An example file, with the S3 endpoint it names pointed at this dev cluster's S3 server."""
    objs = load_manifest_file(EXAMPLES / name)
    for obj in objs:
        s3 = obj.get("spec", {}).get("s3")
        if isinstance(s3, dict) and s3.get("endpoint") == EXAMPLE_ENDPOINT:
            s3["endpoint"] = endpoint
    return objs


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run(root: Path, timeout_s: float) -> dev_cluster.DevState:
    from kubernetes import client, config

    say("1. Bringing up a real Kubernetes node (kubelet, containerd, control plane), SeaweedFS S3, and the chart")
    say("   (the first run builds the images and may take several minutes)")
    state = dev_cluster.up(root)
    say(f"   up: S3 {state.s3_endpoint}, bucket {state.bucket}, image {state.image}")
    say(_indent(state.node.kubectl("get", "pods", "-n", dev_cluster.SYSTEM_NAMESPACE, "-o", "wide")))
    api = config.new_client_from_config(config_file=state.kubeconfig)  # type: ignore[no-untyped-call]
    applier = Applier(api, field_manager="razorfs-demo")
    custom: Any = client.CustomObjectsApi(api)
    core: Any = client.CoreV1Api(api)
    volume = example_objects("razorvolume.yaml", state.s3_endpoint)[0]
    claim = load_manifest_file(EXAMPLES / "pvc.yaml")[0]
    pod = load_manifest_file(EXAMPLES / "pod.yaml")[0]
    ns, rv_name, pod_name = volume["metadata"]["namespace"], volume["metadata"]["name"], pod["metadata"]["name"]
    prefix = volume["spec"]["s3"]["prefix"].rstrip("/") + "/"

    say(f"\n2. kubectl apply -f examples/razorvolume.yaml   (RazorVolume {ns}/{rv_name} -> s3://{state.bucket}/{prefix})")
    applier.apply(volume)

    def rv() -> dict[str, Any]:
        got: dict[str, Any] = custom.get_namespaced_custom_object("razorfs.io", "v1alpha1", ns, "razorvolumes", rv_name)
        return got

    seen: set[str] = set()

    def ready() -> dict[str, Any] | None:
        status = rv().get("status") or {}
        for cond in status.get("conditions") or []:
            line = f"   {cond['type']}={cond['status']} ({cond.get('reason', '')}) {cond.get('message', '')}"
            if line not in seen:
                seen.add(line)
                say(line)
        return status if status.get("phase") == "Ready" else None

    status = wait_for(f"RazorVolume {rv_name} Ready (see {root}/logs/razorfs-operator.log)", ready, timeout_s)
    say(f"   phase Ready: PV {status.get('persistentVolumeName')}, claim {status.get('claimName')}")

    say(f"\n3. kubectl apply -f examples/pvc.yaml   (claim {claim['metadata']['name']} on the StorageClass)")
    applier.apply(claim)
    bound = wait_for("claim bound by csi-provisioner", lambda: (c := core.read_namespaced_persistent_volume_claim(
        claim["metadata"]["name"], claim["metadata"]["namespace"])).status.phase == "Bound" and c, timeout_s)
    say(f"   Bound to {bound.spec.volume_name}, provisioned by the real csi-provisioner")

    say(f"\n4. kubectl apply -f examples/pod.yaml   (pod {ns}/{pod_name} writes into /data and /scratch)")
    applier.apply(pod)

    def running() -> bool:
        phase = core.read_namespaced_pod(pod_name, ns).status.phase
        if phase == "Failed":
            raise DemoFailed(f"pod {pod_name} failed; kubectl logs {pod_name} says why")
        return bool(phase == "Running")

    wait_for(f"pod {pod_name} Running (kubectl describe pod {pod_name})", running, timeout_s)
    say("   pod Running: the kubelet had its volumes staged and published by the node plugin (paths under "
        f"{state.kubelet_dir})")

    s3 = _s3_client(state)

    def objects() -> list[dict[str, Any]] | None:
        listed = s3.list_objects_v2(Bucket=state.bucket, Prefix=prefix).get("Contents", [])
        return listed if any(o["Key"] == prefix + "DONE" for o in listed) else None

    say("\n5. Waiting for the pod's files to reach S3 (written to the local cache, uploaded in the background)")
    listed = wait_for(f"s3://{state.bucket}/{prefix}DONE (see {root}/node/logs/)", objects, timeout_s)
    for obj in listed:
        meta = s3.head_object(Bucket=state.bucket, Key=obj["Key"]).get("Metadata", {})
        shown = ", ".join(f"{k}={v}" for k, v in sorted(meta.items()))
        say(f"   s3://{state.bucket}/{obj['Key']:<32} {human(obj['Size']):>10}   {shown}")
    first = next(o["Key"] for o in listed if o["Key"].endswith(".txt"))
    say(f"   {first}: {s3.get_object(Bucket=state.bucket, Key=first)['Body'].read().decode().strip()}")

    say("\n6. The RazorVolume's status: S3 usage and per-node cache figures (gathered over NodeAdmin gRPC)")

    def figures() -> dict[str, Any] | None:
        status = rv().get("status") or {}
        return status if status.get("nodes") and status.get("usage") else None

    try:
        status = wait_for("status.nodes and status.usage", figures, min(timeout_s, 60))
        usage = status["usage"]
        say(f"   usage: {usage['objects']} objects, {human(usage['bytes'])} (scanned {usage['scannedAt']})")
        for node in status["nodes"]:
            say(f"   node {node['name']}: {node['state']}, cached {human(node.get('cachedBytes', 0))}, "
                f"dirty {human(node.get('dirtyBytes', 0))}" + (f", last error: {node['lastError']}"
                                                              if node.get("lastError") else ""))
    except DemoFailed as exc:
        say(f"   (no figures yet: {exc}; look again with kubectl get rv {rv_name} -o yaml)")
    say("\n7. kubectl get pods -n razorfs-system -l app.kubernetes.io/name=razorfs-mount   # one mount pod per volume")
    say(_indent(state.node.kubectl("get", "pods", "-n", dev_cluster.SYSTEM_NAMESPACE, "-l",
                                   "app.kubernetes.io/name=razorfs-mount", check=False)))
    say("\n8. kubectl logs -n razorfs-system -l app.kubernetes.io/name=razorfs-mount --tail=4   # their daemons")
    say(_indent(state.node.kubectl("logs", "-n", dev_cluster.SYSTEM_NAMESPACE, "-l",
                                   "app.kubernetes.io/name=razorfs-mount", "--tail=4", check=False)))
    return state


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.rstrip().splitlines())


def _s3_client(state: dev_cluster.DevState) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=state.s3_endpoint,
        aws_access_key_id=state.access_key,
        aws_secret_access_key=state.secret_key,
        region_name=state.region,
        config=Config(s3={"addressing_style": "path"}),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RazorFS demo on a local dev cluster")
    parser.add_argument("--root", type=Path, default=dev_cluster.DEFAULT_ROOT)
    parser.add_argument("--timeout", type=float, default=120, help="seconds each step may take")
    parser.add_argument("--down", action="store_true", help="stop the dev cluster at the end")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        state = run(root, args.timeout)
    except DemoFailed as exc:
        say(f"\ndemo failed: {exc}\nthe cluster is left running to look around; `make dev-down` stops it")
        return 1
    finally:
        if args.down:
            dev_cluster.down(root)
    if not args.down:
        say(
            f"""
Everything keeps running. Explore:
  source {root}/env
  kubectl get rv,pvc,pv,pods -A
  kubectl get rv demo -o yaml                  # conditions, usage, per-node cache figures
  aws s3 ls s3://{state.bucket}/demo/ --recursive
  kubectl exec demo-writer -- ls -l /data /scratch   # the pod's view of its volumes
  kubectl logs -n razorfs-system daemonset/razorfs-node -c node
  kubectl logs -n razorfs-system -l app.kubernetes.io/name=razorfs-mount   # the mount daemons
  kubectl delete pod demo-writer; kubectl delete rv demo   # unstage flushes; reclaim Delete empties the prefix
  make dev-down                                # delete pods (flushing), stop everything, restore the host"""
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
