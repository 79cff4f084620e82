"""A real single-node Kubernetes under one root folder: etcd, kube-apiserver (ServiceAccount
admission and token signing on), kube-controller-manager, kube-scheduler, containerd + runc with
the CNI bridge, the kubelet, kube-proxy and kube-router's NetworkPolicy firewall. Binaries come
from `make test-bins` (~/.cache/razorfs/bin); containerd, runc, CNI plugins, iptables and ipset
from Debian.

Every process is recorded in `<root>/pids` and stopped by that record; `stop_node` deletes the
pods while the kubelet still runs, then stops everything and puts the host back as it was
(`host_state`), so it is safe to call on a half-started or already stopped node.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import pidfiles
from ..kubeapi import BIN_CACHE, test_binary
from ..processes import ManagedProcess, RealPartMissing, wait_until
from . import network
from .host_state import HostState
from .pki import create_pki

NODE_NAME = "razorfs-local"
API_PORT = 6443
NO_REGISTRY = "http://127.0.0.1:9"  # discard port, nothing listens: a pull fails at once, locally
K8S_COMPONENTS = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                  "kube-router", "kubectl", "crictl"]
DEBIAN_TOOLS = {"containerd": "containerd", "runc": "runc", "ctr": "containerd", "iptables-legacy": "iptables",
                "ipset": "ipset", "ip": "iproute2", "openssl": "openssl"}
# Stop order: the node first (its pods are gone by then), the control plane last.
PROCESS_ORDER = ["kube-router", "kube-proxy", "kubelet", "containerd", "kube-scheduler", "kube-controller-manager",
                 "kube-apiserver", "etcd"]
COMPONENT_USERS = {
    "kube-controller-manager": ("system:kube-controller-manager", []),
    "kube-scheduler": ("system:kube-scheduler", []),
    "kubelet": (f"system:node:{NODE_NAME}", ["system:nodes"]),
    "kube-proxy": ("system:kube-proxy", []),
    "kube-router": ("razorfs:kube-router", []),  # bound to KUBE_ROUTER_RBAC's ClusterRole
    "admin": ("razorfs-admin", ["system:masters"]),
}


@dataclass
class LocalNode:
    """Where a running node is, written to `<root>/node.json`."""

    root: str
    kubeconfig: str
    node_name: str
    node_ip: str
    kubelet_dir: str
    containerd_socket: str

    @classmethod
    def load(cls, root: Path) -> LocalNode:
        return cls(**json.loads((root / "node.json").read_text()))

    def kubectl(self, *args: str, check: bool = True, input_text: str | None = None) -> str:
        result = subprocess.run(
            [str(BIN_CACHE / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, input=input_text, timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def crictl(self, *args: str, check: bool = True, timeout_s: float = 120) -> str:
        result = subprocess.run(
            [str(BIN_CACHE / "crictl"), f"--runtime-endpoint=unix://{self.containerd_socket}", *args],
            capture_output=True, text=True, timeout=timeout_s,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"crictl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def tag_image(self, source: str, target: str) -> None:
        """A second name for an image containerd already holds (an "upgrade" without a registry)."""
        subprocess.run(
            ["ctr", "--address", self.containerd_socket, "-n", "k8s.io", "images", "tag", "--force", source, target],
            check=True, capture_output=True,
        )

    def import_images(self, archives: list[Path]) -> None:
        for archive in archives:
            subprocess.run(
                ["ctr", "--address", self.containerd_socket, "-n", "k8s.io", "images", "import", "--no-unpack",
                 str(archive)],
                check=True, capture_output=True,
            )


def require_node_parts() -> None:
    for name in K8S_COMPONENTS:
        test_binary(name)
    for tool, package in DEBIAN_TOOLS.items():
        if shutil.which(tool) is None:
            raise RealPartMissing(f"{tool} not found: install Debian's {package} (`make setup` does)")
    if not Path("/dev/fuse").exists():
        raise RealPartMissing("/dev/fuse is missing")
    if not network.BRIDGE_NF_CALL_IPTABLES.exists():
        raise RealPartMissing(f"{network.BRIDGE_NF_CALL_IPTABLES} is missing: load br_netfilter "
                              "(`modprobe br_netfilter`); the NetworkPolicy firewall needs it")


def _kubeconfig(url: str, ca: Path, token: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "razorfs-local", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "razorfs-local", "context": {"cluster": "razorfs-local", "user": user}}],
        "current-context": "razorfs-local",
    }


def _write_private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def _start(root: Path, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
    process = ManagedProcess(name, argv, root / "logs" / f"{name}.log", env=env)
    pidfiles.record(root, name, process)
    return process


def _api_ready(url: str, ca: Path, token: str) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    request = urllib.request.Request(url + "/readyz", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=2, context=context) as response:
        return bool(response.status == 200)


def _start_control_plane(root: Path, pki_dir: Path) -> dict[str, Path]:
    """etcd and kube-apiserver on the bridge address; returns each component's kubeconfig."""
    pki = create_pki(pki_dir, network.NODE_IP, network.SERVICE_IP)
    tokens = {name: secrets.token_urlsafe(24) for name in COMPONENT_USERS}
    _write_private(pki_dir / "tokens.csv", "".join(
        f'{tokens[name]},{user},{user},"{",".join(groups)}"\n' for name, (user, groups) in COMPONENT_USERS.items()))
    subprocess.run(["openssl", "genrsa", "-out", str(pki_dir / "sa.key"), "2048"], check=True, capture_output=True)
    etcd = _start(root, "etcd", [
        str(test_binary("etcd")), f"--data-dir={root / 'etcd'}", "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379", "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380", "--initial-cluster=default=http://127.0.0.1:2380",
        "--listen-metrics-urls=", "--unsafe-no-fsync", "--log-level=warn",
    ])
    url = f"https://{network.NODE_IP}:{API_PORT}"
    apiserver = _start(root, "kube-apiserver", [
        str(test_binary("kube-apiserver")), "--etcd-servers=http://127.0.0.1:2379",
        f"--bind-address={network.NODE_IP}", f"--advertise-address={network.NODE_IP}", f"--secure-port={API_PORT}",
        f"--tls-cert-file={pki.cert('apiserver')}", f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_cert}", f"--token-auth-file={pki_dir / 'tokens.csv'}",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        "--kubelet-preferred-address-types=InternalIP", "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction", f"--service-cluster-ip-range={network.SERVICE_RANGE}",
        f"--service-account-key-file={pki_dir / 'sa.key'}", f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc", "--api-audiences=https://kubernetes.default.svc",
        "--allow-privileged=true", "--endpoint-reconciler-type=lease", "--profiling=false", "--v=1",
    ])
    wait_until(lambda: etcd.check_alive() and apiserver.check_alive() and _api_ready(url, pki.ca_cert, tokens["admin"]),
               120, "kube-apiserver", 0.5)
    configs = {}
    for name, (user, _groups) in COMPONENT_USERS.items():
        configs[name] = _write_private(root / "kubeconfigs" / f"{name}.yaml",
                                       yaml.safe_dump(_kubeconfig(url, pki.ca_cert, tokens[name], user)))
    _start(root, "kube-controller-manager", [
        str(test_binary("kube-controller-manager")), f"--kubeconfig={configs['kube-controller-manager']}",
        f"--authentication-kubeconfig={configs['kube-controller-manager']}",
        f"--authorization-kubeconfig={configs['kube-controller-manager']}",
        "--bind-address=127.0.0.1", "--leader-elect=false", "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki_dir / 'sa.key'}", f"--root-ca-file={pki.ca_cert}",
        f"--service-cluster-ip-range={network.SERVICE_RANGE}", "--controllers=*,-nodeipam,-cloud-node-lifecycle",
        "--node-monitor-grace-period=20s", "--profiling=false", "--v=1",
    ])
    _start(root, "kube-scheduler", [
        str(test_binary("kube-scheduler")), f"--kubeconfig={configs['kube-scheduler']}",
        f"--authentication-kubeconfig={configs['kube-scheduler']}",
        f"--authorization-kubeconfig={configs['kube-scheduler']}",
        "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false", "--v=1",
    ])
    return configs


def _containerd_config(root: Path, net: network.NodeNetwork, pause_image: str) -> Path:
    base = root / "containerd"
    cri = {
        "sandbox_image": pause_image,
        "restrict_oom_score_adj": True,  # no CAP_SYS_RESOURCE here: runc may not lower oom_score_adj
        "enable_selinux": False,
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "runtimes": {"runc": {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": False}}},
        },
        "cni": {"bin_dir": "/usr/lib/cni", "conf_dir": str(net.cni_conf_dir)},
        # No registry may be asked (a pull would query the machine's DNS). What guarantees it is
        # imagePullPolicy Never on every pod the tests make; this `_default` host (a closed
        # loopback port) is a second fence only where containerd reads it (1.7 and later: the
        # Debian 1.6 here may ignore it).
        "registry": {"config_path": str(base / "certs.d")},
    }
    lines = [
        "version = 2",
        f'root = "{base / "root"}"',
        f'state = "{base / "state"}"',
        'disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", '
        '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
        '"io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]',
        "[grpc]",
        f'  address = "{base / "containerd.sock"}"',
        "[ttrpc]",
        f'  address = "{base / "containerd.sock.ttrpc"}"',
        "[debug]",
        f'  address = "{base / "debug.sock"}"',
        "[metrics]",
        '  address = ""',
    ]
    text = "\n".join(lines) + "\n" + _toml_table('plugins."io.containerd.grpc.v1.cri"', cri)
    config = base / "config.toml"
    (base / "certs.d" / "_default").mkdir(parents=True, exist_ok=True)
    (base / "certs.d" / "_default" / "hosts.toml").write_text(f'server = "{NO_REGISTRY}"\n')
    config.write_text(text)
    return config


def _toml_table(name: str, table: dict[str, Any]) -> str:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    out = f"[{name}]\n" + "".join(f"  {k} = {json.dumps(v)}\n" for k, v in scalars.items())
    for key, value in table.items():
        if isinstance(value, dict):
            out += _toml_table(f"{name}.{key}", value)
    return out


def _start_containerd(root: Path, net: network.NodeNetwork, pause_image: str) -> Path:
    config = _containerd_config(root, net, pause_image)
    socket = root / "containerd" / "containerd.sock"
    process = _start(root, "containerd", ["containerd", "--config", str(config), "--log-level", "warn"])
    wait_until(lambda: process.check_alive() and socket.exists(), 30, "containerd", 0.2)
    return socket


def _kubelet_config(root: Path, pki_ca: Path, socket: Path) -> Path:
    resolv = root / "resolv.conf"
    resolv.write_text("options ndots:1\n")  # no nameserver: pods never query the machine's DNS
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": network.NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki_ca)}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "resolvConf": str(resolv),
        "clusterDomain": "cluster.local",
        "volumePluginDir": str(root / "volume-plugins"),
        "podLogsDir": str(root / "pod-logs"),
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
        "shutdownGracePeriod": "0s",
    }
    path = root / "kubelet-config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _share_kubelet_dir(kubelet_dir: Path) -> None:
    """Bidirectional mount propagation needs the kubelet's root on a shared mount (`/` is private)."""
    kubelet_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(kubelet_dir), str(kubelet_dir)], check=True)
    subprocess.run(["mount", "--make-rshared", str(kubelet_dir)], check=True)


def _start_kubelet(root: Path, kubeconfig: Path, pki_ca: Path, socket: Path) -> None:
    kubelet_dir = root / "kubelet"
    _share_kubelet_dir(kubelet_dir)
    _start(root, "kubelet", [
        str(test_binary("kubelet")), f"--config={_kubelet_config(root, pki_ca, socket)}",
        f"--kubeconfig={kubeconfig}", f"--root-dir={kubelet_dir}", f"--cert-dir={root / 'kubelet-pki'}",
        f"--hostname-override={NODE_NAME}", f"--node-ip={network.NODE_IP}", "--v=1",
    ])


def _start_kube_proxy(root: Path, kubeconfig: Path, net: network.NodeNetwork) -> None:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "bindAddress": network.NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "clusterCIDR": "",
        "hostnameOverride": NODE_NAME,
        "nodePortAddresses": [f"{network.NODE_IP}/32"],
        "oomScoreAdj": 0,
        "iptables": {"localhostNodePorts": False},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    path = root / "kube-proxy-config.yaml"
    path.write_text(yaml.safe_dump(config))
    _start(root, "kube-proxy", [str(test_binary("kube-proxy")), f"--config={path}", "--v=1"],
           env={"PATH": net.path_env()})


# What kube-router's informers and its NetworkPolicy controller read; it writes nothing to the API.
KUBE_ROUTER_RBAC: list[dict[str, Any]] = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "razorfs:kube-router"},
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "namespaces", "nodes", "services", "endpoints"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "razorfs:kube-router"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "razorfs:kube-router"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "razorfs:kube-router"}],
    },
]


def _kube_router_chains_ready() -> bool:
    dump = subprocess.run(["iptables-legacy-save", "-t", "filter"], capture_output=True, text=True,
                          check=False).stdout
    return all(f":{chain} " in dump for chain in ("KUBE-ROUTER-INPUT", "KUBE-ROUTER-FORWARD", "KUBE-ROUTER-OUTPUT",
                                                   "KUBE-NWPLCY-DEFAULT"))


def _start_kube_router(root: Path, node: LocalNode, kubeconfig: Path, net: network.NodeNetwork) -> None:
    """kube-router enforces NetworkPolicy (the CNI bridge plugin does not): its firewall programs
    iptables chains and ipsets for every pod on the node, so bridged pod-to-pod traffic (seen by
    iptables through bridge-nf-call-iptables) is filtered by the policies that select the pods.

    Only the firewall runs. v2.1.0 (the only enforcer the Go module proxy offers that works on this
    kernel: kube-network-policies needs the nftables `queue` statement, CONFIG_NFT_QUEUE is absent)
    has an advisory, GHSA-phqm-jgc3-qf8g, that affects only its service proxy (ExternalIPs and
    LoadBalancer IPs), which `--run-service-proxy=false` keeps off; kube-proxy stays the service
    proxy. `--run-router=false` keeps off the BGP router (no routes, no peers, no
    bridge-nf-call-iptables or other sysctl writes: network.create_network sets that one),
    `--enable-cni=false` writes no CNI configuration, `--run-loadbalancer=false` allocates no
    addresses. Health and metrics servers are off (port 0; the health server would listen on every
    interface), and so is pprof (its default). So kube-router opens no port and talks only to the
    API server on the bridge address; it changes nothing but the filter table (legacy iptables,
    the back end kube-proxy uses: the same PATH) and its ipsets, which stop_node removes.
    """
    node.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                             "items": KUBE_ROUTER_RBAC}))
    process = _start(root, "kube-router", [
        str(test_binary("kube-router")), f"--kubeconfig={kubeconfig}", f"--hostname-override={NODE_NAME}",
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--run-loadbalancer=false",
        "--enable-cni=false", "--enable-ipv4=true", "--enable-ipv6=false", "--enable-pprof=false",
        f"--service-cluster-ip-range={network.SERVICE_RANGE}", "--health-port=0", "--metrics-port=0",
        "--iptables-sync-period=1m", "--v=1",
    ], env={"PATH": net.path_env(), "NODE_NAME": NODE_NAME})
    wait_until(lambda: process.check_alive() and _kube_router_chains_ready(), 60, "kube-router's firewall chains",
               0.5)


def _node_ready(node: LocalNode) -> bool:
    out = node.kubectl("get", "node", node.node_name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                       check=False)
    return out.strip() == "True"


def start_node(root: Path, image_archives: list[Path], pause_image: str) -> LocalNode:
    """Starts a node under `root` (which must hold no running node) and imports the images."""
    require_node_parts()
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    if not (root / "host-state.json").exists():
        HostState.record().save(root / "host-state.json")
    try:
        net = network.create_network(root)
        configs = _start_control_plane(root, root / "pki")
        socket = _start_containerd(root, net, pause_image)
        node = LocalNode(root=str(root), kubeconfig=str(configs["admin"]), node_name=NODE_NAME,
                         node_ip=network.NODE_IP, kubelet_dir=str(root / "kubelet"), containerd_socket=str(socket))
        (root / "node.json").write_text(json.dumps(asdict(node), indent=2))
        node.import_images(image_archives)
        _start_kubelet(root, configs["kubelet"], root / "pki" / "ca.crt", socket)
        _start_kube_proxy(root, configs["kube-proxy"], net)
        wait_until(lambda: _node_ready(node), 90, f"node {NODE_NAME} Ready", 0.5)
        # kube-router reads its Node object at start, so it comes once the kubelet registered it.
        _start_kube_router(root, node, configs["kube-router"], net)
        # The controller-manager creates `default` ServiceAccounts; pods wait for them.
        wait_until(lambda: bool(node.kubectl("get", "serviceaccount", "default", "-o", "name", check=False)),
                   60, "the default ServiceAccount", 0.5)
    except BaseException:
        stop_node(root)
        raise
    return node


def node_is_up(root: Path) -> bool:
    found = pidfiles.recorded(root)
    return set(PROCESS_ORDER) <= set(found) and all(pidfiles.alive(p, s) for p, s in found.values())


# --- teardown -----------------------------------------------------------------------------------


def _delete_pods(node: LocalNode, timeout_s: float) -> None:
    """Deletes every pod while the kubelet runs, so volumes are unpublished and unstaged (flushed)."""
    node.kubectl("delete", "pods", "--all-namespaces", "--all", "--wait=false", check=False)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = node.kubectl("get", "pods", "-A", "-o", "name", check=False).split()
        if not left:
            return
        time.sleep(1)


def _kill_cgroup_leftovers() -> list[str]:
    """Last resort after `crictl rmp`: container processes still in kubepods cgroups."""
    killed = []
    for procs in Path("/sys/fs/cgroup/pids/kubepods").rglob("cgroup.procs") if Path(
            "/sys/fs/cgroup/pids/kubepods").exists() else []:
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
                killed.append(pid)
    return killed


def mount_points_under(folder: Path | str) -> list[str]:
    """Mount points below `folder` (resolved), from the mount table."""
    prefix = os.path.realpath(folder) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        return [point for line in mountinfo if (point := line.split()[4]).startswith(prefix)]


def _unmount_under(root: Path) -> None:
    for _ in range(5):
        # Deepest first, so a mount on top of another goes before it.
        points = sorted(set(mount_points_under(root)), key=len, reverse=True)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    # The shared bind mount of the kubelet dir itself is under root too, and was handled above.


def processes_under(root: Path) -> list[int]:
    """Pids of processes whose command line names `root` (containerd shims, mount daemons)."""
    marker = os.path.realpath(root).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop_node(root: Path, pod_timeout_s: float = 120.0) -> list[str]:
    """Stops whatever `start_node` started under `root`; returns what had to be cleaned by force."""
    forced: list[str] = []
    found = pidfiles.recorded(root)
    node = LocalNode.load(root) if (root / "node.json").exists() else None
    if node is not None and "kubelet" in found and pidfiles.alive(*found["kubelet"]):
        _delete_pods(node, pod_timeout_s)
    pidfiles.stop_recorded(root, "kube-router")
    pidfiles.stop_recorded(root, "kube-proxy")
    net = network.NodeNetwork(root / "cni" / "net.d", root / "cni" / "ipam", root / "legacy-iptables")
    if (root / "kube-proxy-config.yaml").exists():
        subprocess.run([str(BIN_CACHE / "kube-proxy"), "--cleanup", f"--config={root / 'kube-proxy-config.yaml'}"],
                       env={**os.environ, "PATH": net.path_env()}, capture_output=True, check=False, timeout=60)
    # kube-proxy's and kube-router's chains (KUBE-ROUTER-*, KUBE-NWPLCY-*, KUBE-POD-FW-* are KUBE-*),
    # then kube-router's ipsets, which those rules referenced. (`kube-router --cleanup-config` is not
    # used: it also runs the cleanup of the service proxy and the router, which never ran here.)
    network.remove_kube_rules(net)
    network.remove_kube_router_ipsets()
    pidfiles.stop_recorded(root, "kubelet", timeout_s=20)
    if node is not None and "containerd" in found and pidfiles.alive(*found["containerd"]):
        with contextlib.suppress(Exception):
            node.crictl("rmp", "-fa", check=False)
    forced += [f"container process {pid}" for pid in _kill_cgroup_leftovers()]
    for name in PROCESS_ORDER:
        pidfiles.stop_recorded(root, name, timeout_s=20)
    for pid in processes_under(root):
        start = pidfiles.start_time(pid)
        if start is not None:
            forced.append(f"process {pid}")
            pidfiles.stop(pid, start)
    _unmount_under(root)
    network.delete_network()
    state = HostState.load(root / "host-state.json")
    if state is not None:
        state.restore()
        (root / "host-state.json").unlink()
    for name in ["containerd", "etcd", "kubelet", "cni", "pki", "kubeconfigs", "kubelet-pki",
                 "volume-plugins", "legacy-iptables"]:
        shutil.rmtree(root / name, ignore_errors=True)
    for name in ["node.json", "kubelet-config.yaml", "kube-proxy-config.yaml", "resolv.conf"]:
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    return forced


def leftovers(root: Path, state: HostState | None) -> list[str]:
    """Everything a stopped node must not leave behind."""
    found = [f"process {pid}" for pid in processes_under(root)]
    found += [f"mount {point}" for point in mount_points_under(root)]
    if network.bridge_exists():
        found.append(f"interface {network.BRIDGE}")
    found += [f"interface {veth}" for veth in network.veths_on_bridge()]
    found += network.kube_rules_left()
    if state is not None:
        found += state.differences()
    return found
