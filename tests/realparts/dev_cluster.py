"""`make dev-up` / `make dev-down`: RazorFS on a real single-node Kubernetes on this machine.

up:   builds (or reuses) the local images, starts the node (tests/realparts/cluster/node.py: etcd,
      kube-apiserver, controller-manager, scheduler, containerd, kubelet, kube-proxy, kube-router's
      NetworkPolicy firewall, a CNI bridge), SeaweedFS S3 on the bridge address, then `helm
      install`s the chart with the local images and waits for the operator, the node plugin and
      the controller to be Ready. Writes <root>/env
      (shell-sourceable: KUBECONFIG, AWS_*, PATH with kubectl) and <root>/state.json.
down: deletes the workload pods while the node plugin runs (kubelet unpublishes and unstages,
      which flushes to S3), uninstalls the chart, stops the node and puts the host back as found,
      then stops the S3 server. Logs stay in <root>/node/logs and <root>/s3.
Both are idempotent. The e2e tests run the same functions on a temporary root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import pidfiles
from .cluster import chart, node
from .cluster.images import LocalImages, local_images
from .cluster.network import NODE_IP
from .kubeapi import BIN_CACHE
from .processes import _port_is_free
from .s3server import start_seaweedfs

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".dev"
DRIVER = "razorfs.csi.io"
NODE_NAME = node.NODE_NAME
SYSTEM_NAMESPACE = chart.NAMESPACE
SECRET_NAME = "razorfs-s3-credentials"
BUCKET = "razorfs-dev"
STORAGE_CLASS = "razorfs"
WELL_KNOWN_S3_PORT = 8333  # examples/ name this port; used when free
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", SYSTEM_NAMESPACE}
WORKLOAD_TIMEOUT_S = 180.0


@dataclass
class DevState:
    """What a running dev cluster looks like from outside; written to <root>/state.json."""

    root: str
    kubeconfig: str
    s3_endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    kubelet_dir: str
    image: str

    @classmethod
    def load(cls, root: Path) -> DevState:
        return cls(**json.loads((root / "state.json").read_text()))

    @property
    def node(self) -> node.LocalNode:
        return node.LocalNode.load(Path(self.root) / "node")

    @property
    def csi_endpoint(self) -> str:
        """The node plugin's CSI socket as the kubelet reaches it (the registrar registers this path)."""
        return f"unix://{self.kubelet_dir}/plugins/{DRIVER}/csi.sock"

    def helm(self) -> chart.Helm:
        return chart.Helm(self.kubeconfig, Path(self.root) / "helm")


def is_up(root: Path) -> bool:
    s3 = pidfiles.recorded(root).get("seaweedfs")
    return s3 is not None and pidfiles.alive(*s3) and node.node_is_up(root / "node") and (root / "state.json").exists()


def credentials_secret(namespace: str, access_key: str, secret_key: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"accessKeyID": access_key, "secretAccessKey": secret_key},
    }


def apply_objects(state: DevState, *objects: dict[str, object]) -> None:
    state.node.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                   "items": list(objects)}))


def install_chart(state: DevState, images: LocalImages, verb: str = "install", project_tag: str | None = None) -> None:
    target = chart.StorageClassTarget(state.s3_endpoint, state.bucket, state.region, SECRET_NAME)
    values = chart.local_values(images, state.kubelet_dir, Path(state.root) / "host", target, project_tag)
    state.helm().install_or_upgrade(values, verb=verb)


def write_env(root: Path, state: DevState) -> None:
    env = root / "env"
    env.write_text(
        "# source me: . .dev/env\n"
        f"export KUBECONFIG={state.kubeconfig}\n"
        f"export PATH={BIN_CACHE}:$PATH\n"
        f"export AWS_ENDPOINT_URL={state.s3_endpoint}\n"
        f"export AWS_ACCESS_KEY_ID={state.access_key}\n"
        f"export AWS_SECRET_ACCESS_KEY={state.secret_key}\n"
        f"export AWS_REGION={state.region}\n"
        f"export AWS_DEFAULT_REGION={state.region}\n"
        f"export RAZORFS_BUCKET={state.bucket}\n"
    )
    env.chmod(0o600)


def up(root: Path = DEFAULT_ROOT, s3_port: int | None = WELL_KNOWN_S3_PORT) -> DevState:
    """Starts everything unless it already runs; returns the cluster's coordinates."""
    if is_up(root):
        return DevState.load(root)
    if pidfiles.recorded(root) or (root / "node").exists():
        down(root)  # half up (something died): start over from nothing
    root.mkdir(parents=True, exist_ok=True)
    try:
        images = local_images()
        local = node.start_node(root / "node", images.archives, images.pause)
        if s3_port is not None and not (_port_is_free(s3_port) and _port_is_free(s3_port + 10000)):
            s3_port = None
        s3 = start_seaweedfs(root / "s3", s3_port=s3_port, bind_ip=NODE_IP)
        pidfiles.record(root, "seaweedfs", s3.process)
        s3.client().create_bucket(Bucket=BUCKET)  # type: ignore[no-untyped-call]
        state = DevState(
            root=str(root), kubeconfig=local.kubeconfig, s3_endpoint=s3.endpoint_url, access_key=s3.access_key,
            secret_key=s3.secret_key, region=s3.region, bucket=BUCKET, kubelet_dir=local.kubelet_dir,
            image=images.project,
        )
        apply_objects(state, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
                      credentials_secret(SYSTEM_NAMESPACE, s3.access_key, s3.secret_key),
                      credentials_secret("default", s3.access_key, s3.secret_key))  # examples/ use it
        install_chart(state, images)
        (root / "state.json").write_text(json.dumps(asdict(state), indent=2))
        write_env(root, state)
    except BaseException:
        if not os.environ.get("RAZORFS_KEEP_FAILED"):  # set it to look around a failed start
            down(root)
        raise
    return state


def razorfs_mounts(kubelet_dir: str) -> list[str]:
    """RazorFS staging and publish mounts on the node."""
    return [p for p in node.mount_points_under(kubelet_dir) if DRIVER in p or "kubernetes.io~csi" in p]


def _delete_workloads(local: node.LocalNode) -> None:
    """Workload pods first, while the node plugin runs: kubelet unpublishes and unstages them. A
    pod object is gone once its volumes are unpublished; the unstage (which flushes) comes after,
    so the mounts are waited for too."""
    namespaces = set(local.kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").split())
    for namespace in sorted(namespaces - SYSTEM_NAMESPACES):
        local.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=false", check=False)
    deadline = time.monotonic() + WORKLOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        pods = local.kubectl("get", "pods", "-A", "-o", "jsonpath={.items[*].metadata.namespace}").split()
        if not set(pods) - SYSTEM_NAMESPACES and not razorfs_mounts(local.kubelet_dir):
            return
        time.sleep(1)


def down(root: Path = DEFAULT_ROOT) -> list[str]:
    """Stops everything up() started under `root`; returns what had to be cleaned up by force.
    The S3 server's store stays in <root>/s3."""
    node_root = root / "node"
    if node.node_is_up(node_root):
        local = node.LocalNode.load(node_root)
        with contextlib.suppress(Exception):
            _delete_workloads(local)
        with contextlib.suppress(Exception):
            chart.Helm(local.kubeconfig, root / "helm").uninstall()
    forced = node.stop_node(node_root) if node_root.exists() else []
    pidfiles.stop_recorded(root, "seaweedfs")
    for name in ["state.json", "env"]:
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    return forced


def print_next_steps(state: DevState) -> None:
    print(
        f"""RazorFS dev cluster is up: a real node {NODE_NAME!r} (kubelet, containerd) with the chart installed.

  source {state.root}/env          # KUBECONFIG, PATH (kubectl), AWS_* for the S3 server, RAZORFS_BUCKET
  kubectl get pods -n {SYSTEM_NAMESPACE}   # operator, node plugin (with registrar and livenessprobe), controller
  kubectl apply -f examples/razorvolume.yaml -f examples/pod.yaml
  kubectl get rv -w                # wait for Ready; kubectl get rv demo -o yaml shows per-node cache figures
  aws s3 ls s3://{state.bucket}/ --recursive
  make dev-down                    # deletes the pods (flushing), stops everything, restores the host

S3 endpoint {state.s3_endpoint}, bucket {state.bucket}; logs in {state.root}/node/logs/"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RazorFS local dev cluster on a real Kubernetes node")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.action == "up":
        if is_up(root):
            print(f"already up (state in {root})\n")
        print_next_steps(up(root))
    elif args.action == "down":
        forced = down(root)
        print("dev cluster stopped" + (f" (cleaned up by force: {', '.join(forced)})" if forced else ""))
    else:
        print("up" if is_up(root) else "down")
        return 0 if is_up(root) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
