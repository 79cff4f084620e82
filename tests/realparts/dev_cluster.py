"""`make dev-up` / `make dev-down`: the whole of RazorFS on loopback, detached, as node `local`.

up:   SeaweedFS S3, etcd + kube-apiserver, the CRD, a credentials Secret, the CSIDriver, a
      StorageClass, the Node `local`, then razorfs-node (--mode all), razorfs-operator and the kubelet
      harness. Writes <root>/kubeconfig, <root>/env (shell-sourceable) and <root>/state.json; each
      process' pid (with its start time, so a recycled pid is never killed) goes to <root>/pids/.
down: stops them in reverse order (the harness first, which unpublishes and unstages, so dirty data
      is flushed), then sweeps mount daemons and FUSE mounts under <root>; logs stay in <root>/logs.
Both are idempotent. The e2e tests run the same functions on a temporary root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .csiclient import CsiClient
from .kubeapi import start_control_plane
from .kubeapply import Applier, load_manifest_file
from .processes import ManagedProcess, free_port, wait_until
from .s3server import start_seaweedfs

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".dev"
CRD_FILE = REPO / "charts" / "razorfs" / "files" / "razorvolumes-crd.yaml"
DRIVER = "razorfs.csi.io"
NODE_NAME = "local"
SYSTEM_NAMESPACE = "razorfs-system"
SECRET_NAME = "razorfs-s3-credentials"
BUCKET = "razorfs-dev"
STORAGE_CLASS = "razorfs"
WELL_KNOWN_S3_PORT = 8333  # examples/ name this endpoint; used when free
WELL_KNOWN_ADMIN_PORT = 9810
# Stop order: the harness first (it releases every volume), the S3 server last (flushes need it).
PROCESS_ORDER = ["kubelet", "operator", "node", "kube-apiserver", "etcd", "seaweedfs"]
STOP_TIMEOUT_S = {"kubelet": 180.0, "node": 15.0}


@dataclass
class DevState:
    """What a running dev cluster looks like from outside; written to <root>/state.json."""

    root: str
    kubeconfig: str
    kube_url: str
    s3_endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    csi_endpoint: str
    kubelet_dir: str
    admin_address: str
    admin_token_file: str

    @classmethod
    def load(cls, root: Path) -> DevState:
        return cls(**json.loads((root / "state.json").read_text()))


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks), or None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def _record_pid(root: Path, name: str, proc: ManagedProcess) -> None:
    pids = root / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{name}.pid").write_text(f"{proc.proc.pid} {_start_time(proc.proc.pid)}\n")


def _recorded(root: Path) -> dict[str, tuple[int, str]]:
    found = {}
    for path in sorted((root / "pids").glob("*.pid")) if (root / "pids").exists() else []:
        pid, start = path.read_text().split()
        found[path.stem] = (int(pid), start)
    return found


def _alive(pid: int, start: str) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child (tests run up() in-process)
    return _start_time(pid) == start


def is_up(root: Path) -> bool:
    recorded = _recorded(root)
    return set(recorded) == set(PROCESS_ORDER) and all(_alive(p, s) for p, s in recorded.values())


# --- objects ------------------------------------------------------------------------------------


def credentials_secret(namespace: str, access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"accessKeyID": access_key, "secretAccessKey": secret_key},
    }


def bootstrap_objects(state: DevState) -> list[dict[str, Any]]:
    """The objects dev-up applies besides the CRD: namespace, credentials, driver, class, node."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
        credentials_secret("default", state.access_key, state.secret_key),
        credentials_secret(SYSTEM_NAMESPACE, state.access_key, state.secret_key),
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": DRIVER},
            "spec": {
                "attachRequired": False,
                "podInfoOnMount": True,
                "fsGroupPolicy": "None",
                "volumeLifecycleModes": ["Persistent"],
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": DRIVER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "parameters": {
                "endpoint": state.s3_endpoint,
                "bucket": state.bucket,
                "region": state.region,
                "forcePathStyle": "true",
                "prefix": "pvc",
                "csi.storage.k8s.io/provisioner-secret-name": SECRET_NAME,
                "csi.storage.k8s.io/provisioner-secret-namespace": SYSTEM_NAMESPACE,
                "csi.storage.k8s.io/node-stage-secret-name": SECRET_NAME,
                "csi.storage.k8s.io/node-stage-secret-namespace": SYSTEM_NAMESPACE,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"kubernetes.io/hostname": NODE_NAME}},
        },
    ]


def node_plugin_pod() -> dict[str, Any]:
    """A Pod object standing for the node plugin running as a local process: the operator finds node
    plugins as pods (label selector) and calls NodeAdmin at their podIP. The harness leaves it alone."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"razorfs-node-{NODE_NAME}",
            "namespace": SYSTEM_NAMESPACE,
            "labels": {"app.kubernetes.io/name": "razorfs", "app.kubernetes.io/component": "node"},
            "annotations": {"razorfs.io/local-process": "razorfs-node"},
        },
        "spec": {
            "nodeName": NODE_NAME,
            "containers": [{"name": "node", "image": "razorfs:dev", "command": ["razorfs-node"]}],
        },
    }


def apply_bootstrap(state: DevState) -> None:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=state.kubeconfig)  # type: ignore[no-untyped-call]
    applier = Applier(api, field_manager="razorfs-dev-up")
    for crd in load_manifest_file(CRD_FILE):
        applier.apply(crd)
    ext: Any = client.ApiextensionsV1Api(api)

    def established() -> bool:
        conditions = ext.read_custom_resource_definition("razorvolumes.razorfs.io").status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(established, 30, "RazorVolume CRD established", 0.2)
    applier.apply_all(bootstrap_objects(state))
    applier.apply(node_plugin_pod())
    core: Any = client.CoreV1Api(api)
    core.patch_namespaced_pod_status(
        f"razorfs-node-{NODE_NAME}",
        SYSTEM_NAMESPACE,
        {"status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}]}},
    )


# --- processes ----------------------------------------------------------------------------------


def start_node_side(root: Path, state: DevState, admin_port: int) -> None:
    """razorfs-node, razorfs-operator and the kubelet harness, each recorded in <root>/pids."""
    logs = root / "logs"
    socket_path = Path(state.csi_endpoint.removeprefix("unix://"))
    node = ManagedProcess(
        "razorfs-node",
        [
            _bin("razorfs-node"), "--mode=all", f"--endpoint={state.csi_endpoint}", f"--node-id={NODE_NAME}",
            f"--state-dir={root / 'node' / 'state'}", f"--cache-root={root / 'node' / 'cache'}",
            f"--kubelet-dir={state.kubelet_dir}", f"--admin-address={state.admin_address}",
            f"--admin-token-file={state.admin_token_file}",
        ],
        logs / "razorfs-node.log",
    )
    _record_pid(root, "node", node)

    def plugin_ready() -> bool:
        node.check_alive()
        if not socket_path.exists():
            return False
        csi = CsiClient(state.csi_endpoint)
        try:
            return csi.probe()
        finally:
            csi.close()

    wait_until(plugin_ready, 60, "razorfs-node CSI socket", 0.2)
    operator = ManagedProcess(
        "razorfs-operator",
        [
            _bin("razorfs-operator"), "--liveness=", f"--node-namespace={SYSTEM_NAMESPACE}",
            f"--node-admin-port={admin_port}", f"--node-admin-token-file={state.admin_token_file}",
            # Short intervals so status figures move while someone watches the demo.
            "--resync-interval-s=5", "--retry-delay-s=2", "--deletion-retry-delay-s=1",
        ],
        logs / "razorfs-operator.log",
        env={"KUBECONFIG": state.kubeconfig},
    )
    _record_pid(root, "operator", operator)
    kubelet = ManagedProcess(
        "kubelet-harness",
        [
            sys.executable, "-m", "tests.realparts.kubelet", f"--kubeconfig={state.kubeconfig}",
            f"--node-name={NODE_NAME}", f"--kubelet-dir={state.kubelet_dir}", f"--csi-endpoint={state.csi_endpoint}",
            f"--driver={DRIVER}", f"--log-dir={logs / 'pods'}",
        ],
        logs / "kubelet-harness.log",
        env={"PYTHONPATH": str(REPO)},
    )
    _record_pid(root, "kubelet", kubelet)
    time.sleep(1.0)
    operator.check_alive()
    kubelet.check_alive()


def write_env(root: Path, state: DevState) -> None:
    (root / "env").write_text(
        "# source me: . .dev/env\n"
        f"export KUBECONFIG={state.kubeconfig}\n"
        f"export AWS_ENDPOINT_URL={state.s3_endpoint}\n"
        f"export AWS_ACCESS_KEY_ID={state.access_key}\n"
        f"export AWS_SECRET_ACCESS_KEY={state.secret_key}\n"
        f"export AWS_REGION={state.region}\n"
        f"export AWS_DEFAULT_REGION={state.region}\n"
        f"export RAZORFS_BUCKET={state.bucket}\n"
    )
    (root / "env").chmod(0o600)


def up(root: Path = DEFAULT_ROOT, s3_port: int | None = WELL_KNOWN_S3_PORT) -> DevState:
    """Starts everything unless it already runs; returns the cluster's coordinates."""
    if is_up(root):
        return DevState.load(root)
    if _recorded(root):
        down(root)  # half up (something died): start over from nothing
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    from .processes import _port_is_free

    if s3_port is not None and not (_port_is_free(s3_port) and _port_is_free(s3_port + 10000)):
        s3_port = None
    try:
        s3 = start_seaweedfs(root / "s3", s3_port=s3_port)
        _record_pid(root, "seaweedfs", s3.process)
        plane = start_control_plane(root / "kube")
        _record_pid(root, "etcd", plane.etcd)
        _record_pid(root, "kube-apiserver", plane.apiserver)
        shutil.copy(plane.kubeconfig, root / "kubeconfig")
        s3.client().create_bucket(Bucket=BUCKET)  # type: ignore[no-untyped-call]
        admin_port = WELL_KNOWN_ADMIN_PORT if _port_is_free(WELL_KNOWN_ADMIN_PORT) else free_port()
        token_file = root / "node-admin-token"
        token_file.write_text(secrets.token_urlsafe(32))
        token_file.chmod(0o600)
        state = DevState(
            root=str(root),
            kubeconfig=str(root / "kubeconfig"),
            kube_url=plane.url,
            s3_endpoint=s3.endpoint_url,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            region=s3.region,
            bucket=BUCKET,
            csi_endpoint=f"unix://{root / 'plugin' / 'csi.sock'}",
            kubelet_dir=str(root / "kubelet"),
            admin_address=f"127.0.0.1:{admin_port}",
            admin_token_file=str(token_file),
        )
        (root / "state.json").write_text(json.dumps(asdict(state), indent=2))
        write_env(root, state)
        apply_bootstrap(state)
        start_node_side(root, state, admin_port)
    except BaseException:
        down(root)
        raise
    return state


def _signal_group(pid: int, start: str, signum: int) -> None:
    if not _alive(pid, start):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _stop(name: str, pid: int, start: str) -> None:
    _signal_group(pid, start, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S.get(name, 10.0)
    while time.monotonic() < deadline and _alive(pid, start):
        time.sleep(0.1)
    if _alive(pid, start):
        _signal_group(pid, start, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(pid, start):
            time.sleep(0.1)


def mounts_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    # Deepest first, so a bind mount on top of a FUSE mount goes before it.
    return sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)


def processes_under(root: Path) -> list[int]:
    """Pids of processes whose command line names <root> (mount daemons the plugin started)."""
    marker = os.path.realpath(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def down(root: Path = DEFAULT_ROOT, stop_s3: bool = True) -> list[str]:
    """Stops everything up() started under `root`; returns what had to be cleaned up by force.
    `stop_s3=False` leaves the S3 server running (tests read what the shutdown flushed); a later
    down() stops it."""
    forced: list[str] = []
    recorded = _recorded(root)
    for name in PROCESS_ORDER:
        if name in recorded and (stop_s3 or name != "seaweedfs"):
            _stop(name, *recorded[name])
            (root / "pids" / f"{name}.pid").unlink()
    # Mount daemons run in their own sessions (they outlive plugin restarts by design): the harness
    # unstaged what it knew of; anything left is asked to flush and exit, then killed.
    s3_pid = recorded.get("seaweedfs", (0, ""))[0]
    for pid in processes_under(root):
        start = _start_time(pid)
        if start is not None and (stop_s3 or os.getpgid(pid) != s3_pid):
            forced.append(f"process {pid}")
            _stop("daemon", pid, start)
    for point in mounts_under(root):
        forced.append(f"mount {point}")
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    for name in ["kube", "node", "kubelet", "plugin", *(["pids", "s3"] if stop_s3 else [])]:
        shutil.rmtree(root / name, ignore_errors=True)
    for name in ["state.json", "env", "kubeconfig", "node-admin-token"] if stop_s3 else []:
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    return forced


def print_next_steps(state: DevState) -> None:
    print(
        f"""RazorFS dev cluster is up (node {NODE_NAME!r}, everything on loopback).

  source {state.root}/env          # KUBECONFIG, AWS_* for the S3 server, RAZORFS_BUCKET
  kubectl get nodes,csidrivers,storageclasses
  kubectl apply -f examples/razorvolume.yaml -f examples/pod.yaml
  kubectl get rv -w                # wait for Ready; kubectl get rv demo -o yaml shows per-node cache figures
  aws s3 ls s3://{state.bucket}/ --recursive
  make dev-down                    # stops everything and unmounts

S3 endpoint {state.s3_endpoint}, bucket {state.bucket}; logs in {state.root}/logs/"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RazorFS local dev cluster")
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    import urllib3

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # loopback apiserver, self-signed
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
